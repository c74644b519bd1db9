"""The Mixed Transformer-CNN learned image codec (TCM) that SA-ICM is trained on.

Architecture of Liu, Sun and Katto, "Learned Image Compression with Mixed Transformer-CNN
Architectures" (CVPR 2023), in the configuration SA-ICM uses: N=128, M=320, five channel slices,
window attention in every stage, a channel-conditional Gaussian entropy model with latent residual
prediction, and a 192-channel hyper-latent coded by a factorized EntropyBottleneck.

Module and parameter names, shapes and registration order follow the authors' `models/tcm.py`
(jmliu206/LIC_TCM), so their checkpoints and the SA-ICM ones (`icm_78.pth.tar`, `icm_93.pth.tar`,
SA-ICM-v2 `sa-icm_0.03` ... `sa-icm_0.06`) load with strict=True. The code itself is written anew.

Two deliberate differences from the reference code, neither touching weights or bitstreams:
- Latent sizes must be multiples of the attention window (8 for the main path, 4 for the hyperprior),
  which padding the image to a multiple of 128 guarantees. The reference pads small inputs inside its
  Swin blocks in a way that breaks when a latent side equals the window (images with a 128-pixel
  side); here such a latent is simply one window.
- Drop-path is omitted: the published models use a rate of 0, where it is the identity.

"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..torch_compat import import_torchvision

import_torchvision()  # before compressai, which imports torchvision (see torch_compat)

from compressai.ans import BufferedRansEncoder, RansDecoder
from compressai.entropy_models import EntropyBottleneck, GaussianConditional
from compressai.layers import (
    AttentionBlock,
    ResidualBlock,
    ResidualBlockUpsample,
    ResidualBlockWithStride,
    conv1x1,
    conv3x3,
    subpel_conv3x3,
)
from compressai.models import CompressionModel

PADDING_MULTIPLE = 128  # g_a downsamples 16x and h_a 4x more; windows of 8 on y need 16 x 8 = 128
HYPER_CHANNELS = 192
CONTEXT_CHANNELS = 128  # inner width of the slice attention blocks, fixed in the reference model


def ste_round(x: torch.Tensor) -> torch.Tensor:
    """Round in the forward pass, identity gradient in the backward pass."""
    return torch.round(x) - x.detach() + x


def conv(in_channels: int, out_channels: int, kernel_size: int) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel_size, stride=1, padding=kernel_size // 2)


class WindowAttention(nn.Module):
    """Multi-head self-attention inside non-overlapping windows, optionally shifted by half a window.

    Input and output are channels-last (B, H, W, C). Shifted windows roll the map by half a window
    and mask attention between pixels that the roll brought together from opposite borders.
    """

    def __init__(self, dim: int, head_dim: int, window: int, shifted: bool):
        super().__init__()
        self.heads = dim // head_dim
        self.head_dim = head_dim
        self.window = window
        self.shift = window // 2 if shifted else 0
        self.embedding_layer = nn.Linear(dim, 3 * dim)
        # one learned bias per head and relative offset (dy, dx), each in [-(window-1), window-1]
        span = 2 * window - 1
        self.relative_position_params = nn.Parameter(torch.empty(self.heads, span, span))
        nn.init.trunc_normal_(self.relative_position_params, std=0.02)
        self.linear = nn.Linear(dim, dim)
        rows, cols = torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")
        coords = torch.stack([rows.flatten(), cols.flatten()], dim=1)  # (P, 2), P = window^2
        offsets = coords[:, None, :] - coords[None, :, :] + window - 1
        self.register_buffer("relative_index", offsets, persistent=False)  # derived, not a weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, height, width, channels = x.shape
        p = self.window
        if height % p or width % p:
            raise ValueError(f"latent {height}x{width} is not a multiple of the attention window {p}")
        if self.shift:
            x = torch.roll(x, shifts=(-self.shift, -self.shift), dims=(1, 2))
        rows, cols = height // p, width // p
        windows = x.reshape(batch, rows, p, cols, p, channels).permute(0, 1, 3, 2, 4, 5)
        windows = windows.reshape(batch, rows * cols, p * p, channels)
        qkv = self.embedding_layer(windows).reshape(batch, rows * cols, p * p, 3 * self.heads, self.head_dim)
        q, k, v = qkv.permute(3, 0, 1, 2, 4).chunk(3, dim=0)  # each (heads, B, windows, P, head_dim)
        bias = self.relative_position_params[:, self.relative_index[..., 0], self.relative_index[..., 1]]
        bias = bias[:, None, None]  # (heads, 1, 1, P, P)
        if self.shift:
            bias = bias.masked_fill(self._shift_mask(height, width, x.device), float("-inf"))
        attended = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=self.head_dim**-0.5)
        attended = attended.permute(1, 2, 3, 0, 4).reshape(batch, rows * cols, p * p, channels)
        out = self.linear(attended).reshape(batch, rows, cols, p, p, channels)
        out = out.permute(0, 1, 3, 2, 4, 5).reshape(batch, height, width, channels)
        if self.shift:
            out = torch.roll(out, shifts=(self.shift, self.shift), dims=(1, 2))
        return out

    def _shift_mask(self, height: int, width: int, device: torch.device) -> torch.Tensor:
        """(windows, P, P) True where query and key came from different sides of the wrap-around."""
        p = self.window
        wrapped_rows = (torch.arange(height, device=device) >= height - self.shift).long()
        wrapped_cols = (torch.arange(width, device=device) >= width - self.shift).long()
        region = 2 * wrapped_rows[:, None] + wrapped_cols[None, :]
        region = region.reshape(height // p, p, width // p, p).permute(0, 2, 1, 3).reshape(-1, p * p)
        return region[:, :, None] != region[:, None, :]


class SwinLayer(nn.Module):
    """Pre-norm transformer layer: window attention and a 4x MLP, each with a residual."""

    def __init__(self, dim: int, head_dim: int, window: int, shifted: bool):
        super().__init__()
        self.ln1 = nn.LayerNorm(dim)
        self.msa = WindowAttention(dim, head_dim, window, shifted)
        self.ln2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.msa(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class ConvTransBlock(nn.Module):
    """TCM's mixed block: a 1x1 conv splits channels into a CNN half and a Swin half, fused by 1x1."""

    def __init__(self, conv_dim: int, trans_dim: int, head_dim: int, window: int, shifted: bool):
        super().__init__()
        self.conv_dim = conv_dim
        self.trans_dim = trans_dim
        self.trans_block = SwinLayer(trans_dim, head_dim, window, shifted)
        self.conv1_1 = nn.Conv2d(conv_dim + trans_dim, conv_dim + trans_dim, 1)
        self.conv1_2 = nn.Conv2d(conv_dim + trans_dim, conv_dim + trans_dim, 1)
        self.conv_block = ResidualBlock(conv_dim, conv_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv_x, trans_x = torch.split(self.conv1_1(x), (self.conv_dim, self.trans_dim), dim=1)
        conv_x = self.conv_block(conv_x) + conv_x  # ResidualBlock adds its own skip; TCM adds another
        trans_x = self.trans_block(trans_x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        return x + self.conv1_2(torch.cat((conv_x, trans_x), dim=1))


class SwinPair(nn.Module):
    """A regular-window layer followed by a shifted-window layer, on channels-first maps."""

    def __init__(self, dim: int, head_dim: int, window: int):
        super().__init__()
        self.block_1 = SwinLayer(dim, head_dim, window, shifted=False)
        self.block_2 = SwinLayer(dim, head_dim, window, shifted=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block_2(self.block_1(x.permute(0, 2, 3, 1))).permute(0, 3, 1, 2)


class SwinAttention(AttentionBlock):
    """Cheng et al.'s attention block whose non-local branch is a Swin pair, squeezed to 128 channels."""

    def __init__(self, dim: int, head_dim: int, window: int, inner_dim: int = CONTEXT_CHANNELS):
        super().__init__(N=inner_dim)  # conv_a (trunk) and conv_b (mask branch)
        self.non_local_block = SwinPair(inner_dim, head_dim, window)
        self.in_conv = conv1x1(dim, inner_dim)
        self.out_conv = conv1x1(inner_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.in_conv(x)
        mask = torch.sigmoid(self.conv_b(self.non_local_block(x)))
        return self.out_conv(self.conv_a(x) * mask + x)


def _stage(n_blocks: int, dim: int, head_dim: int, window: int) -> list[nn.Module]:
    """Alternating regular / shifted ConvTransBlocks, as in every TCM stage."""
    return [ConvTransBlock(dim, dim, head_dim, window, shifted=bool(i % 2)) for i in range(n_blocks)]


def _slice_transform(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        conv(in_channels, 224, 3), nn.GELU(), conv(224, 128, 3), nn.GELU(), conv(128, out_channels, 3)
    )


class TCM(CompressionModel):
    """TCM with channel-wise autoregressive entropy model; compress/decompress write one rANS stream."""

    def __init__(
        self,
        config: tuple[int, ...] = (2, 2, 2, 2, 2, 2),
        head_dim: tuple[int, ...] = (8, 16, 32, 32, 16, 8),
        N: int = 128,
        M: int = 320,
        num_slices: int = 5,
        max_support_slices: int = 5,
    ):
        super().__init__()
        # registered first so that state_dict order matches the reference model's
        self.entropy_bottleneck = EntropyBottleneck(HYPER_CHANNELS)
        self.num_slices = num_slices
        self.max_support_slices = max_support_slices
        window, hyper_window, hyper_head_dim = 8, 4, 32
        slice_channels = M // num_slices

        self.g_a = nn.Sequential(
            ResidualBlockWithStride(3, 2 * N, 2),
            *_stage(config[0], N, head_dim[0], window), ResidualBlockWithStride(2 * N, 2 * N, 2),
            *_stage(config[1], N, head_dim[1], window), ResidualBlockWithStride(2 * N, 2 * N, 2),
            *_stage(config[2], N, head_dim[2], window), conv3x3(2 * N, M, stride=2),
        )
        self.g_s = nn.Sequential(
            ResidualBlockUpsample(M, 2 * N, 2),
            *_stage(config[3], N, head_dim[3], window), ResidualBlockUpsample(2 * N, 2 * N, 2),
            *_stage(config[4], N, head_dim[4], window), ResidualBlockUpsample(2 * N, 2 * N, 2),
            *_stage(config[5], N, head_dim[5], window), subpel_conv3x3(2 * N, 3, 2),
        )
        self.h_a = nn.Sequential(
            ResidualBlockWithStride(M, 2 * N, 2),
            *_stage(config[0], N, hyper_head_dim, hyper_window), conv3x3(2 * N, HYPER_CHANNELS, stride=2),
        )
        self.h_mean_s = self._hyper_synthesis(config[3], N, M, hyper_head_dim, hyper_window)
        self.h_scale_s = self._hyper_synthesis(config[3], N, M, hyper_head_dim, hyper_window)

        def support(i: int) -> int:  # channels of hyper output + already decoded slices
            return M + slice_channels * min(i, max_support_slices)

        slices = range(num_slices)
        self.atten_mean = nn.ModuleList(nn.Sequential(SwinAttention(support(i), 16, window)) for i in slices)
        self.atten_scale = nn.ModuleList(nn.Sequential(SwinAttention(support(i), 16, window)) for i in slices)
        self.cc_mean_transforms = nn.ModuleList(_slice_transform(support(i), slice_channels) for i in slices)
        self.cc_scale_transforms = nn.ModuleList(_slice_transform(support(i), slice_channels) for i in slices)
        # latent residual prediction sees the mean support plus the slice just decoded
        lrp_inputs = [support(i) + slice_channels for i in slices]
        self.lrp_transforms = nn.ModuleList(_slice_transform(channels, slice_channels) for channels in lrp_inputs)
        self.gaussian_conditional = GaussianConditional(None)

    @classmethod
    def from_state_dict(cls, state_dict: dict) -> "TCM":
        """The SA-ICM configuration with `state_dict` loaded strictly (names and shapes must match)."""
        model = cls()
        model.load_state_dict(state_dict, strict=True)
        return model

    @staticmethod
    def _hyper_synthesis(n_blocks: int, N: int, M: int, head_dim: int, window: int) -> nn.Sequential:
        return nn.Sequential(
            ResidualBlockUpsample(HYPER_CHANNELS, 2 * N, 2),
            *_stage(n_blocks, N, head_dim, window), subpel_conv3x3(2 * N, M, 2),
        )

    def _slice_parameters(self, index, latent_means, latent_scales, decoded):
        """Mean, scale and the mean branch's context for slice `index`, given earlier decoded slices."""
        support = decoded[: self.max_support_slices]
        mean_support = self.atten_mean[index](torch.cat([latent_means, *support], dim=1))
        mu = self.cc_mean_transforms[index](mean_support)
        scale_support = self.atten_scale[index](torch.cat([latent_scales, *support], dim=1))
        scale = self.cc_scale_transforms[index](scale_support)
        return mu, scale, mean_support

    def _refine(self, index, mean_support, y_hat_slice):
        """Latent residual prediction: add a bounded correction for the quantization error."""
        lrp = self.lrp_transforms[index](torch.cat([mean_support, y_hat_slice], dim=1))
        return y_hat_slice + 0.5 * torch.tanh(lrp)

    def forward(self, x: torch.Tensor) -> dict:
        y = self.g_a(x)
        z = self.h_a(y)
        _, z_likelihoods = self.entropy_bottleneck(z)
        medians = self.entropy_bottleneck._get_medians()
        z_hat = ste_round(z - medians) + medians  # the decoder sees rounded z, not the noisy one
        latent_scales = self.h_scale_s(z_hat)
        latent_means = self.h_mean_s(z_hat)
        decoded, likelihoods = [], []
        for index, y_slice in enumerate(y.chunk(self.num_slices, dim=1)):
            mu, scale, mean_support = self._slice_parameters(index, latent_means, latent_scales, decoded)
            _, slice_likelihoods = self.gaussian_conditional(y_slice, scale, mu)
            likelihoods.append(slice_likelihoods)
            decoded.append(self._refine(index, mean_support, ste_round(y_slice - mu) + mu))
        x_hat = self.g_s(torch.cat(decoded, dim=1))
        return {"x_hat": x_hat, "likelihoods": {"y": torch.cat(likelihoods, dim=1), "z": z_likelihoods}}

    def _cdf_tables(self):
        gaussian = self.gaussian_conditional
        return (
            gaussian.quantized_cdf.tolist(),
            gaussian.cdf_length.reshape(-1).int().tolist(),
            gaussian.offset.reshape(-1).int().tolist(),
        )

    def compress(self, x: torch.Tensor) -> dict:
        """One image -> {"strings": [[y_string], [z_string]], "shape": z's (H, W)}."""
        if x.size(0) != 1:
            raise ValueError(f"TCM.compress codes one image at a time, got a batch of {x.size(0)}")
        y = self.g_a(x)
        z = self.h_a(y)
        z_strings = self.entropy_bottleneck.compress(z)
        # condition on the decoder's z_hat, not on z, so both sides compute identical parameters
        z_hat = self.entropy_bottleneck.decompress(z_strings, z.shape[-2:])
        latent_scales = self.h_scale_s(z_hat)
        latent_means = self.h_mean_s(z_hat)
        decoded, symbols, indexes = [], [], []
        for index, y_slice in enumerate(y.chunk(self.num_slices, dim=1)):
            mu, scale, mean_support = self._slice_parameters(index, latent_means, latent_scales, decoded)
            quantized = self.gaussian_conditional.quantize(y_slice, "symbols", mu)
            symbols.append(quantized.reshape(-1))
            indexes.append(self.gaussian_conditional.build_indexes(scale).reshape(-1))
            decoded.append(self._refine(index, mean_support, quantized + mu))
        encoder = BufferedRansEncoder()
        encoder.encode_with_indexes(torch.cat(symbols).tolist(), torch.cat(indexes).tolist(), *self._cdf_tables())
        return {"strings": [[encoder.flush()], z_strings], "shape": z.shape[-2:]}

    def decompress(self, strings: list, shape) -> dict:
        z_hat = self.entropy_bottleneck.decompress(strings[1], shape)
        latent_scales = self.h_scale_s(z_hat)
        latent_means = self.h_mean_s(z_hat)
        decoder = RansDecoder()
        decoder.set_stream(strings[0][0])
        cdf_tables = self._cdf_tables()
        decoded = []
        for index in range(self.num_slices):
            mu, scale, mean_support = self._slice_parameters(index, latent_means, latent_scales, decoded)
            indexes = self.gaussian_conditional.build_indexes(scale)
            values = decoder.decode_stream(indexes.reshape(-1).tolist(), *cdf_tables)
            quantized = torch.tensor(values, dtype=mu.dtype, device=mu.device).reshape(mu.shape)
            y_hat_slice = self.gaussian_conditional.dequantize(quantized, mu)
            decoded.append(self._refine(index, mean_support, y_hat_slice))
        return {"x_hat": self.g_s(torch.cat(decoded, dim=1)).clamp_(0, 1)}

