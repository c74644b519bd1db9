"""The demo workflow through a real single-node SLURM, with the project's SLURM profile.

Installs Debian's slurmctld, slurmd and munge (root and apt needed), starts them without systemd,
runs the demo DAG (VVC QP 32 and 47, SFace) with `--profile workflow/profiles/slurm` and checks that
every non-local job went through sbatch and completed there, and that Table 1 came out sane.
"""
from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ["slurmctld", "slurmd", "slurm-client", "munge"]
SLURM_CONF = Path("/etc/slurm/slurm.conf")  # job steps (srun inside sbatch) read only this path
PARTITION = "icmtest"
SLURM_RULES = {"prepare_images", "code_vvc", "detect_faces", "crop_faces", "embed_faces"}

pytestmark = [pytest.mark.slurm, pytest.mark.integration]


def run(command: list[str], **options) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, **options)


def install_packages() -> None:
    if all(shutil.which(tool) for tool in ("slurmctld", "slurmd", "sbatch", "munged")):
        return
    environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", *PACKAGES]
    if run(install, env=environment).returncode != 0:  # a fresh machine has no package lists yet
        run(["apt-get", "update"], env=environment, check=True)
        run(install, env=environment, check=True)


def munge_answers() -> bool:
    credential = run(["munge", "-n"])
    return credential.returncode == 0 and run(["unmunge"], input=credential.stdout).returncode == 0


def wait_for(condition, what: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not reached within {seconds} s")
        time.sleep(0.5)


def slurm_conf(folder: Path) -> str:
    host = socket.gethostname().split(".")[0]
    return "\n".join([
        "ClusterName=icmtest",
        f"SlurmctldHost={host}(127.0.0.1)",
        "SlurmUser=root",
        "SlurmdUser=root",
        "AuthType=auth/munge",
        f"StateSaveLocation={folder}/state",
        f"SlurmdSpoolDir={folder}/spool",
        f"SlurmctldPidFile={folder}/slurmctld.pid",
        f"SlurmdPidFile={folder}/slurmd.pid",
        f"SlurmctldLogFile={folder}/slurmctld.log",
        f"SlurmdLogFile={folder}/slurmd.log",
        "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_CPU_Memory",
        "AccountingStorageType=accounting_storage/none",
        "JobAcctGatherType=jobacct_gather/none",
        "JobCompType=jobcomp/none",
        "MpiDefault=none",
        "MailProg=/bin/true",
        "ReturnToService=2",
        # Finished jobs stay visible to squeue/scontrol for the whole test (the profile's status
        # command is squeue, and the checks below read the jobs back).
        "MinJobAge=3600",
        # Rules ask for up to 6000 MB; two such jobs fit side by side.
        f"NodeName={host} NodeAddr=127.0.0.1 CPUs=2 RealMemory=16000 State=UNKNOWN",
        f"PartitionName={PARTITION} Nodes=ALL Default=YES MaxTime=INFINITE State=UP",
        "",
    ])


@pytest.fixture(scope="module")
def slurm_cluster(tmp_path_factory):
    """A running single-node SLURM; yields the folder with its logs. Stops what it started."""
    if os.geteuid() != 0:
        pytest.skip("starting slurmctld/slurmd and installing packages needs root")
    if not shutil.which("apt-get"):
        pytest.skip("apt-get is not available to install SLURM (a Debian/Ubuntu machine is needed)")
    install_packages()
    folder = tmp_path_factory.mktemp("slurm")
    for sub in ("state", "spool"):
        (folder / sub).mkdir()
    previous_conf = SLURM_CONF.read_text() if SLURM_CONF.exists() else None
    daemons: list[subprocess.Popen] = []

    def start(command: list[str], name: str, **options) -> None:
        with open(folder / f"{name}.out", "w") as output:
            daemons.append(subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, **options))

    try:
        SLURM_CONF.parent.mkdir(parents=True, exist_ok=True)
        SLURM_CONF.write_text(slurm_conf(folder))
        if not munge_answers():
            Path("/run/munge").mkdir(parents=True, exist_ok=True)
            shutil.chown("/run/munge", "munge", "munge")
            start(["munged", "--foreground"], "munged", user="munge", group="munge", extra_groups=[])
            wait_for(munge_answers, "munged answering", 20)
        for daemon in ("slurmctld", "slurmd"):  # in the foreground: this process owns and stops them all
            start([daemon, "-D"], daemon)
        wait_for(lambda: run(["sinfo", "-h", "-N", "-o", "%t"]).stdout.strip() == "idle", "node idle", 60)
        yield folder
    finally:
        for process in reversed(daemons):
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if previous_conf is None:
            SLURM_CONF.unlink(missing_ok=True)
        else:
            SLURM_CONF.write_text(previous_conf)


def test_demo_workflow_runs_through_slurm_with_the_profile(slurm_cluster, tmp_path):
    results = tmp_path / "results"
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({
        "results": str(results),
        "dataset": {"kind": "demo"},
        "codecs": [{"codec": "vvc", "qualities": [32, 47], "options": {"preset": "faster", "qpa": False}}],
        "faces": {"models": ["SFace"]},
    }))
    environment = {**os.environ, "ICM_SLURM_PARTITION": PARTITION, "ICM_SLURM_GPU_PARTITION": PARTITION,
                   "ICM_SLURM_ACCOUNT": ""}  # no accounting database: submit without --account
    command = [
        sys.executable, "-m", "snakemake", "--profile", "workflow/profiles/slurm", "--configfile", str(config),
        "--slurm-logdir", str(tmp_path / "slurm_logs"), "--slurm-keep-successful-logs",
        # The default first wait (40 s, then +10 s per idle check) would dominate a run this small.
        "--slurm-init-seconds-before-status-checks", "2",
    ]
    started = time.monotonic()
    result = run(command, cwd=ROOT, env=environment, timeout=900)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-6000:]
    print(f"SLURM demo run: {time.monotonic() - started:.0f} s")

    submissions = re.findall(r"Job \d+ has been submitted with SLURM jobid (\d+) \(log: (\S+)\)\.", log)
    slurm_jobs = {}
    for slurm_id, job_log_path in submissions:
        fields = dict(re.findall(r"(\w+)=(\S*)", run(["scontrol", "show", "job", "-o", slurm_id], check=True).stdout))
        assert fields["JobState"] == "COMPLETED", fields
        assert fields["Partition"] == PARTITION and fields["NodeList"] == socket.gethostname().split(".")[0]
        # What the job's own Snakemake says the rule needs is what SLURM allocated.
        job_log = Path(job_log_path).read_text()
        threads = re.search(r"^\s*threads: (\d+)$", job_log, re.MULTILINE)
        memory = re.search(r"^\s*resources: .*\bmem_mb=(\d+)", job_log, re.MULTILINE).group(1)
        assert (fields["NumCPUs"], fields["MinMemoryNode"]) == (threads.group(1) if threads else "1", f"{memory}M")
        slurm_jobs[slurm_id] = re.match(r"rule_(\w+?)(?:_wildcards_.*)?$", fields["Comment"]).group(1)
    rules = list(slurm_jobs.values())
    assert set(rules) == SLURM_RULES, rules
    assert rules.count("code_vvc") == 2  # two QPs x one shard, one sbatch each
    assert rules.count("crop_faces") == 3 and rules.count("embed_faces") == 3  # original, QP 32, QP 47

    controller_log = (slurm_cluster / "slurmctld.log").read_text()
    for slurm_id in slurm_jobs:
        assert f"_slurm_rpc_submit_batch_job: JobId={slurm_id} " in controller_log
    assert "localrule tabulate:" in log  # aggregation runs on the submit host, not through sbatch

    table = pd.read_csv(results / "tables" / "table1_conf0.950.csv").set_index("quality")
    assert list(table.index) == [32, 47]
    assert (table.images == 5).all() and (table.faces >= 4).all()
    assert 0 < table.bpp_mean[47] < table.bpp_mean[32] < 1
    assert 0.5 < table.mean_cos_SFace[47] < table.mean_cos_SFace[32] <= 1
