"""The demo workflow through a real single-node SLURM, with the project's SLURM profile.

Installs Debian's slurmctld, slurmd and munge (root and apt needed), starts them without systemd,
runs the demo DAG (VVC QP 32 and 47, SFace) with `--workflow-profile profiles/slurm` and checks that
every non-local job went through sbatch and completed there, and that Table 1 came out sane. A second
run with `gpu: true` checks that jobs asking for a GPU land in the GPU partition whatever their rule
or codec label, that no other job does, and that a job retried after a failure gets more memory and time.
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
GPU_PARTITION = "icmgpu"  # the same node, with one GPU declared as a generic resource
SLURM_GRES_CONF = SLURM_CONF.with_name("gres.conf")
SLURM_RULES = {"prepare_images", "code_vvc", "detect_faces", "crop_faces", "embed_faces", "measure_quality"}

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
        # The node declares one GPU (its device file /dev/null: nothing here uses it) so that --gpus=1 is accepted.
        "GresTypes=gpu",
        # Rules ask for up to 6000 MB; two such jobs fit side by side.
        f"NodeName={host} NodeAddr=127.0.0.1 CPUs=2 RealMemory=16000 Gres=gpu:1 State=UNKNOWN",
        f"PartitionName={PARTITION} Nodes=ALL Default=YES MaxTime=INFINITE State=UP",
        f"PartitionName={GPU_PARTITION} Nodes=ALL MaxTime=INFINITE State=UP",
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
    previous = {path: path.read_text() if path.exists() else None for path in (SLURM_CONF, SLURM_GRES_CONF)}
    daemons: list[subprocess.Popen] = []
    # the daemons, the clients and Snakemake read this cluster's configuration (conftest.py points
    # SLURM_CONF at an empty file for every other test)
    environment = pytest.MonkeyPatch()
    environment.setenv("SLURM_CONF", str(SLURM_CONF))

    def start(command: list[str], name: str, **options) -> None:
        with open(folder / f"{name}.out", "w") as output:
            daemons.append(subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, **options))

    try:
        SLURM_CONF.parent.mkdir(parents=True, exist_ok=True)
        SLURM_CONF.write_text(slurm_conf(folder))
        SLURM_GRES_CONF.write_text(f"NodeName={socket.gethostname().split('.')[0]} Name=gpu File=/dev/null\n")
        if not munge_answers():
            Path("/run/munge").mkdir(parents=True, exist_ok=True)
            shutil.chown("/run/munge", "munge", "munge")
            start(["munged", "--foreground"], "munged", user="munge", group="munge", extra_groups=[])
            wait_for(munge_answers, "munged answering", 20)
        for daemon in ("slurmctld", "slurmd"):  # in the foreground: this process owns and stops them all
            start([daemon, "-D"], daemon)
        # one line per partition the node is in
        wait_for(lambda: set(run(["sinfo", "-h", "-N", "-o", "%t"]).stdout.split()) == {"idle"}, "node idle", 60)
        yield folder
    finally:
        for process in reversed(daemons):
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for path, text in previous.items():
            if text is None:
                path.unlink(missing_ok=True)
            else:
                path.write_text(text)
        environment.undo()


def slurm_command(config: Path, tmp_path: Path, *targets: str) -> list[str]:
    return [
        sys.executable, "-m", "snakemake", "--workflow-profile", "profiles/slurm", "--configfile", str(config),
        "--slurm-logdir", str(tmp_path / "slurm_logs"), "--slurm-keep-successful-logs",
        # The default first wait (40 s, then +10 s per idle check) would dominate a run this small.
        "--slurm-init-seconds-before-status-checks", "2", *targets,
    ]


def slurm_environment() -> dict[str, str]:
    return {**os.environ, "ICM_SLURM_PARTITION": PARTITION, "ICM_SLURM_GPU_PARTITION": GPU_PARTITION,
            "ICM_SLURM_ACCOUNT": ""}  # no accounting database: submit without --account


def submitted_jobs(log: str) -> list[tuple[str, Path, dict[str, str]]]:
    """(rule, the job's own log, `scontrol show job` fields) of every job the run submitted, in order."""
    jobs = []
    for slurm_id, job_log in re.findall(r"Job \d+ has been submitted with SLURM jobid (\d+) \(log: (\S+)\)\.", log):
        fields = dict(re.findall(r"(\w+)=(\S*)", run(["scontrol", "show", "job", "-o", slurm_id], check=True).stdout))
        jobs.append((re.match(r"rule_(\w+?)(?:_wildcards_.*)?$", fields["Comment"]).group(1), Path(job_log), fields))
    return jobs


def test_demo_workflow_runs_through_slurm_with_the_profile(slurm_cluster, tmp_path):
    results = tmp_path / "results"
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({
        "results": str(results),
        "dataset": {"kind": "demo"},
        "codecs": [{"codec": "vvc", "qualities": [32, 47], "options": {"preset": "faster", "qpa": False}}],
        "faces": {"models": ["SFace"]},
    }))
    started = time.monotonic()
    # gpu: false, so no job asks for a GPU and none may land in the GPU partition, model rules included.
    # Up to Table 1 and the summary: the figures and privacy metrics after it are local rules (no sbatch).
    result = run(slurm_command(config, tmp_path, str(results / "run_summary.md")), cwd=ROOT, env=slurm_environment(),
                 timeout=900)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-6000:]
    print(f"SLURM demo run: {time.monotonic() - started:.0f} s")

    jobs = submitted_jobs(log)
    for _, job_log_path, fields in jobs:
        assert fields["JobState"] == "COMPLETED", fields
        assert fields["Partition"] == PARTITION and fields["NodeList"] == socket.gethostname().split(".")[0]
        # What the job's own Snakemake says the rule needs is what SLURM allocated.
        job_log = job_log_path.read_text()
        threads = re.search(r"^\s*threads: (\d+)$", job_log, re.MULTILINE)
        memory = re.search(r"^\s*resources: .*\bmem_mb=(\d+)", job_log, re.MULTILINE).group(1)
        assert (fields["NumCPUs"], fields["MinMemoryNode"]) == (threads.group(1) if threads else "1", f"{memory}M")
    rules = [rule for rule, _, _ in jobs]
    assert set(rules) == SLURM_RULES, rules
    assert rules.count("code_vvc") == 2  # two QPs x one shard, one sbatch each
    assert rules.count("crop_faces") == 3 and rules.count("embed_faces") == 3  # original, QP 32, QP 47

    controller_log = (slurm_cluster / "slurmctld.log").read_text()
    for _, _, fields in jobs:
        assert f"_slurm_rpc_submit_batch_job: JobId={fields['JobId']} " in controller_log
    assert "localrule tabulate:" in log  # aggregation runs on the submit host, not through sbatch

    table = pd.read_csv(results / "tables" / "table1_conf0.950.csv").set_index("quality")
    assert list(table.index) == [32, 47]
    assert (table.images == 5).all() and (table.faces >= 4).all()
    assert 0 < table.bpp_mean[47] < table.bpp_mean[32] < 1
    assert 0.5 < table.mean_cos_SFace[47] < table.mean_cos_SFace[32] <= 1


def cancel_first_running(rule: str, seconds: float, until_done: subprocess.Popen) -> str:
    """scancel the first job of `rule` once it runs (as a node failure would end it); its SLURM id."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and until_done.poll() is None:
        for line in run(["squeue", "-h", "-o", "%i|%T|%k"]).stdout.splitlines():
            slurm_id, state, comment = line.split("|", 2)
            if state == "RUNNING" and re.match(rf"rule_{rule}(_wildcards_|$)", comment):
                run(["scancel", slurm_id], check=True)
                return slurm_id
        time.sleep(0.3)
    pytest.fail(f"no {rule} job was seen running")


def test_gpu_jobs_go_to_the_gpu_partition_by_resource_and_a_retry_gets_more_memory_and_time(slurm_cluster, tmp_path):
    results = tmp_path / "results"
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({
        "results": str(results), "gpu": True, "dataset": {"kind": "demo", "first_n": 2},
        "codecs": [{"codec": "vvc", "qualities": [47], "options": {"preset": "faster", "qpa": False}},
                   # a learned codec under a label that says nothing of it (random weights: no download)
                   {"codec": "bmshj2018-factorized", "label": "mine", "qualities": [1],
                    "options": {"random_init": True, "device": "cpu"}}],
        "faces": {"models": ["SFace"]},
    }))
    targets = [f"{results}/faces/shard-0.csv", f"{results}/bitstreams/vvc/47/shard-0",
               f"{results}/bitstreams/mine/1/shard-0"]
    with open(tmp_path / "snakemake.log", "w") as output:
        snakemake = subprocess.Popen(slurm_command(config, tmp_path, *targets), cwd=ROOT,
                                     env=slurm_environment(), stdout=output, stderr=subprocess.STDOUT)
        cancelled = cancel_first_running("code_vvc", 300, snakemake)
        snakemake.wait(timeout=600)
    log = (tmp_path / "snakemake.log").read_text()
    assert snakemake.returncode == 0, log[-6000:]

    jobs = submitted_jobs(log)
    partitions = {rule: {fields["Partition"] for r, _, fields in jobs if r == rule} for rule, _, _ in jobs}
    assert partitions == {"prepare_images": {PARTITION}, "code_vvc": {PARTITION},
                          "detect_faces": {GPU_PARTITION}, "code_mine": {GPU_PARTITION}}, partitions
    for rule, _, fields in jobs:  # a GPU is asked for (--gpus=1) exactly where the partition is the GPU one
        asks_gpu = fields.get("TresPerJob", "").endswith("gpu:1")
        assert asks_gpu == (fields["Partition"] == GPU_PARTITION), (rule, fields.get("TresPerJob"))

    code_vvc = [fields for rule, _, fields in jobs if rule == "code_vvc"]
    assert [fields["JobId"] for fields in code_vvc][0] == cancelled
    assert [fields["JobState"] for fields in code_vvc] == ["CANCELLED", "COMPLETED"]
    # the rule asks for 2000 MB and 240 min; the retry (attempt 2) for twice both
    assert [(fields["MinMemoryNode"], fields["TimeLimit"]) for fields in code_vvc] == [
        ("2000M", "04:00:00"), ("4000M", "08:00:00")]
    assert len(list((results / "bitstreams" / "mine" / "1" / "shard-0").glob("*.lic"))) == 2
