"""Performer, Linformer, Nystromformer and FNet: approximation quality, counted FLOPs, options."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from vitsearch.evaluators.complexity import trace_flops
from vitsearch.space import (
    ArchConfig,
    BlockConfig,
    ConfigError,
    ForwardContext,
    MixerConfig,
    StageConfig,
    StemConfig,
    TokenGrid,
    build_model,
    get_mixer,
    validate,
)
from vitsearch.space.mixers.nystrom import iterative_pinv, landmark_layout
from vitsearch.space.mixers.performer import default_features, orthogonal_gaussian

GRID = TokenGrid(4, 4, prefix=1)  # 17 tokens: a 4x4 grid and a cls token
DIM, HEADS = 64, 2


def make(name: str, grid: TokenGrid = GRID, dim: int = DIM, heads: int | None = HEADS, **options):
    cfg = MixerConfig(type=name, heads=heads, options=tuple(sorted(options.items())))
    return get_mixer(name)(dim, cfg, grid)


def exact_attention(mixer: nn.Module, x: torch.Tensor, grid: TokenGrid = GRID) -> torch.Tensor:
    """The ``attention`` mixer (fused softmax SDPA) with the same qkv and proj weights."""
    ref = make("attention", grid, heads=mixer.heads)
    ref.qkv.load_state_dict(mixer.qkv.state_dict())
    ref.proj.load_state_dict(mixer.proj.state_dict())
    with torch.no_grad():
        return ref.eval()(x, ForwardContext(grid=grid))


def rel_err(out: torch.Tensor, ref: torch.Tensor) -> float:
    return ((out - ref).norm() / ref.norm()).item()


class Wrap(nn.Module):
    """A mixer as a plain ``forward(x)`` module, for ``trace_flops``."""

    def __init__(self, mixer: nn.Module, grid: TokenGrid):
        super().__init__()
        self.mixer, self.grid = mixer, grid

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mixer(x, ForwardContext(grid=self.grid))


def traced(mixer: nn.Module, grid: TokenGrid = GRID, batch: int = 1) -> int:
    return trace_flops(Wrap(mixer, grid).eval(), (torch.randn(batch, grid.tokens, mixer.dim),))


# --- approximation of exact softmax attention ---------------------------------------------------


def test_performer_approximates_softmax_attention():
    # FAVOR+ is a Monte-Carlo estimate: numerator and denominator are averages over m random
    # features, so the error of the normalised output falls like c / sqrt(m). On these inputs
    # (x ~ N(0, 0.25), default nn.Linear init, d_h = 32; mean of 3 draws) we measured
    # c ~ 0.45 (rel. error 0.014 at m = 1024, 0.0067 at 4096, 0.0033 at 16384, 0.0015 at 65536).
    # At m = 16384 we allow 0.006 (c < 0.8, under 2x the measured error), and m x16 must cut the
    # error below 0.35x (1/sqrt(16) = 0.25 expected): a biased estimator stalls. With non-Haar
    # orthogonal features (QR without the sign fix) the error stalled at 0.0069 (0.42x) and
    # fails both. Uniform attention (plain averaging of the values) is 0.04 off here.
    x = torch.randn(2, GRID.tokens, DIM) * 0.5
    errs = {}
    for m in (1024, 16384):
        runs = []
        for seed in range(3):
            torch.manual_seed(seed)
            mixer = make("performer", features=m).eval()
            with torch.no_grad():
                runs.append(rel_err(mixer(x, ForwardContext(grid=GRID)), exact_attention(mixer, x)))
        errs[m] = sum(runs) / len(runs)
    v = mixer.qkv(x).reshape(2, GRID.tokens, 3, DIM)[:, :, 2]
    uniform = mixer.proj(v.mean(dim=1, keepdim=True).expand_as(v))
    assert errs[16384] < 0.006
    assert errs[16384] < 0.35 * errs[1024]
    assert errs[16384] < 0.2 * rel_err(uniform, exact_attention(mixer, x))


def test_orthogonal_features_are_isotropic_and_orthogonal():
    # Blocks of d orthogonal rows, each row marginally Gaussian: rows of a block are orthogonal
    # and no row prefers a direction (plain Householder QR tilts row i towards -e_i by ~0.29).
    d, blocks = 8, 2000
    w = orthogonal_gaussian(d * blocks, d).reshape(blocks, d, d)
    first = w[0] / w[0].norm(dim=1, keepdim=True)
    torch.testing.assert_close(first @ first.T, torch.eye(d), atol=1e-5, rtol=0)
    directions = w / w.norm(dim=-1, keepdim=True)
    assert directions.mean(dim=0).abs().max() < 0.08  # std of a mean of 2000 is ~0.008
    assert orthogonal_gaussian(10, 4).shape == (10, 4)  # partial last block


def test_nystrom_with_all_tokens_as_landmarks_approximates_softmax_attention():
    # With m = N landmarks each landmark is one token, so the formula is A Z A v with
    # A = softmax(q k^T / sqrt(d_h)); it equals A v exactly when Z = pinv(A). The only error
    # is the truncated pseudo-inverse iteration, which converges (third order once
    # ||I - A Z|| < 1): 6 iterations (the paper's) left 1.8% relative error on these random
    # inputs, 20 iterations 1e-5 (float32 round-off). We allow 5% and 1e-4. The value
    # convolution is switched off: it is an addition of Nystromformer's, not part of softmax.
    x = torch.randn(2, GRID.tokens, DIM)
    six = make("nystrom", landmarks=GRID.tokens, conv_kernel=0).eval()
    assert six.landmarks == GRID.tokens and six.pad == 0
    twenty = make("nystrom", landmarks=GRID.tokens, conv_kernel=0, pinv_iters=20).eval()
    twenty.load_state_dict(six.state_dict())
    ref = exact_attention(six, x)
    with torch.no_grad():
        assert rel_err(six(x, ForwardContext(grid=GRID)), ref) < 0.05
        assert rel_err(twenty(x, ForwardContext(grid=GRID)), ref) < 1e-4


def test_iterative_pinv_converges_to_the_pseudo_inverse():
    a = torch.randn(3, 6, 6, dtype=torch.float64).softmax(dim=-1)
    torch.testing.assert_close(iterative_pinv(a, 30), torch.linalg.pinv(a), atol=1e-8, rtol=1e-6)


def test_nystrom_landmarks_are_segment_means_with_front_padding():
    assert landmark_layout(17, 64) == (17, 1, 0)
    assert landmark_layout(65, 64) == (33, 2, 1)  # no landmark of pure padding
    assert landmark_layout(197, 64) == (50, 4, 3)
    mixer = make("nystrom", landmarks=8)  # 17 tokens: 6 segments of 3, one zero in front
    assert (mixer.landmarks, mixer.segment, mixer.pad) == (6, 3, 1)
    t = torch.randn(2, HEADS, GRID.tokens, DIM // HEADS)
    means = mixer.segment_means(t)
    torch.testing.assert_close(means[:, :, 0], t[:, :, :2].mean(dim=2))  # cls + first patch
    torch.testing.assert_close(means[:, :, 1:], t[:, :, 2:].unflatten(2, (5, 3)).mean(dim=3))


# --- FLOPs: handles and formulas against hand counts ---------------------------------------------


@pytest.mark.parametrize("op", ["fft2", "fftn", "fft_twice"])
def test_fft_handles_count_n_log2_n_per_line(op):
    class Fft(nn.Module):
        def forward(self, x):
            if op == "fft2":
                return torch.fft.fft2(x).real
            if op == "fftn":
                return torch.fft.fftn(x, dim=(-2, -1)).real
            return torch.fft.fft(torch.fft.fft(x, dim=-1), dim=-2).real

    b, n, c = 3, 8, 16
    # c lines of n points along the sequence, n lines of c points along the channels, per image
    assert trace_flops(Fft(), (torch.randn(b, n, c),)) == b * (c * n * 3 + n * c * 4)


def test_performer_flops_by_hand():
    n, c, h, m = GRID.tokens, DIM, HEADS, 16
    gt = n * c * 3 * c + n * c * c  # qkv, proj
    gt += 2 * h * n * (c // h) * m  # q and k times the (d_h, m) features
    gt += h * m * n * (c // h)  # phi(k)^T v
    gt += h * n * m * (c // h)  # phi(q) (phi(k)^T v)
    gt += h * n * m  # phi(q) times the key sum (denominator)
    mixer = make("performer", features=m)
    assert traced(mixer) == gt == get_mixer("performer").flops(DIM, mixer.cfg, GRID)
    assert traced(mixer, batch=2) == 2 * gt


def test_linformer_flops_by_hand():
    n, c, k = GRID.tokens, DIM, 8
    gt = 4 * n * c * c + 2 * c * n * k + n * k * 2 * c  # qkv+proj, E on keys and values, SDPA
    mixer = make("linformer", k=k)
    assert traced(mixer) == gt == get_mixer("linformer").flops(DIM, mixer.cfg, GRID)
    assert traced(mixer, batch=2) == 2 * gt


def test_nystrom_flops_by_hand():
    n, c, h, d = GRID.tokens, DIM, HEADS, DIM // HEADS
    m, iters, kernel = 6, 6, 5  # landmarks=8 on 17 tokens: 6 segments of 3
    gt = 4 * n * c * c  # qkv, proj
    gt += h * n * d * m + h * m * d * m + h * m * d * n  # the three similarity matrices
    gt += iters * 4 * h * m**3  # pseudo-inverse
    gt += h * m * n * d + h * m * m * d + h * n * m * d  # k3 v, Z (.), k1 (.)
    gt += h * kernel * n * d  # depth-wise (kernel, 1) conv per head over (N, d_h)
    mixer = make("nystrom", landmarks=8, conv_kernel=kernel)
    assert traced(mixer) == gt == get_mixer("nystrom").flops(DIM, mixer.cfg, GRID)
    assert traced(mixer, batch=2) == 2 * gt


def test_fnet_flops_by_hand():
    grid = TokenGrid(4, 4, prefix=0)  # 16 tokens, 64 channels: whole log2
    mixer = make("fnet", grid, heads=None)
    gt = 64 * 16 * 4 + 16 * 64 * 6
    assert traced(mixer, grid) == gt == get_mixer("fnet").flops(DIM, mixer.cfg, grid)
    assert traced(mixer, GRID) == get_mixer("fnet").flops(DIM, mixer.cfg, GRID)  # 17 tokens


@pytest.mark.parametrize(
    "name, options",
    [
        ("performer", {}),
        ("performer", {"features": 7}),
        ("linformer", {"k": 64}),
        ("linformer", {"k": 20}),
        ("nystrom", {}),
        ("nystrom", {"landmarks": 16, "conv_kernel": 0}),
        ("fnet", {}),
    ],
)
def test_analytic_formula_equals_trace_off_the_contract_shapes(name, options):
    grid = TokenGrid(8, 8, prefix=1)  # 65 tokens: Nystrom pads, Linformer k=64 < N
    heads = None if name == "fnet" else 4
    mixer = make(name, grid, heads=heads, **options)
    assert traced(mixer, grid) == get_mixer(name).flops(DIM, mixer.cfg, grid)


# --- Performer: features -------------------------------------------------------------------------


def test_performer_default_features_and_fixed_in_eval():
    assert default_features(32) == int(32 * math.log(32)) == 110
    assert default_features(1) == 1 and default_features(2) == 1
    mixer = make("performer").eval()
    assert mixer.features.shape == (110, DIM // HEADS)
    assert "features" in mixer.state_dict()
    assert not any(p is mixer.features for p in mixer.parameters())
    before = mixer.features.clone()
    x = torch.randn(2, GRID.tokens, DIM)
    with torch.no_grad():
        first, second = mixer(x, ForwardContext(grid=GRID)), mixer(x, ForwardContext(grid=GRID))
    assert torch.equal(mixer.features, before)
    assert torch.equal(first, second)


def test_performer_redraw_only_in_training_and_when_asked():
    x = torch.randn(1, GRID.tokens, DIM)
    ctx = ForwardContext(grid=GRID)
    off = make("performer").train()
    before = off.features.clone()
    off(x, ctx), off(x, ctx)
    assert torch.equal(off.features, before)  # default: never redrawn

    on = make("performer", redraw_interval=1).train()
    before = on.features.clone()
    on(x, ctx)
    assert torch.equal(on.features, before)  # first draw is the one from construction
    on(x, ctx)
    assert not torch.equal(on.features, before)
    on.eval()
    before = on.features.clone()
    on(x, ctx), on(x, ctx)
    assert torch.equal(on.features, before)

    deployed = on.reparameterize()
    assert deployed is on and deployed.redraw_interval == 0
    deployed.train()
    deployed(x, ctx), deployed(x, ctx)
    assert torch.equal(deployed.features, before)


# --- Linformer: sequence length and options -------------------------------------------------------


def one_block(mixer: MixerConfig, head: str = "cls") -> ArchConfig:
    return ArchConfig(
        stages=(StageConfig(width=DIM, blocks=(BlockConfig(mixer=mixer, mlp_ratio=2.0),)),),
        stem=StemConfig(patch_size=8),
        head=head,
    )


@pytest.mark.parametrize("head, tokens", [("cls", 17), ("mean", 16)])
def test_linformer_sequence_length_comes_from_the_grid(head, tokens):
    mixer_cfg = MixerConfig(type="linformer", heads=HEADS, options=(("k", 8),))
    model = build_model(one_block(mixer_cfg, head), img_size=32, num_classes=10)
    mixer = model.stages[0].blocks[0].mixer
    assert mixer.seq_len == tokens and mixer.seq_proj.shape == (8, tokens)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    clipped = make("linformer", TokenGrid(4, 4, prefix=1 if head == "cls" else 0))  # k = 64 > N
    assert clipped.k == tokens and clipped.seq_proj.shape == (tokens, tokens)


@pytest.mark.parametrize(
    "options, message",
    [
        ((("k", 0),), "stages[0].blocks[0].mixer.k: must be at least 1, got 0"),
        ((("k", 2.5),), "stages[0].blocks[0].mixer.k: expected int, got 2.5"),
        ((("landmarks", 8),), "stages[0].blocks[0].mixer.landmarks: unknown option for mixer 'linformer'"),
    ],
)
def test_linformer_validation_names_the_field(options, message):
    with pytest.raises(ConfigError) as err:
        validate(one_block(MixerConfig(type="linformer", heads=HEADS, options=options)))
    assert str(err.value).startswith(message)


@pytest.mark.parametrize(
    "name, options, path",
    [
        ("performer", (("features", -1),), "mixer.features"),
        ("performer", (("redraw_interval", True),), "mixer.redraw_interval"),
        ("nystrom", (("landmarks", 0),), "mixer.landmarks"),
        ("nystrom", (("conv_kernel", 4),), "mixer.conv_kernel"),
        ("nystrom", (("pinv_iters", 0),), "mixer.pinv_iters"),
    ],
)
def test_other_option_errors_name_the_field(name, options, path):
    with pytest.raises(ConfigError, match=rf"stages\[0\]\.blocks\[0\]\.{path}:"):
        validate(one_block(MixerConfig(type=name, heads=HEADS, options=options)))


def test_fnet_takes_no_heads():
    with pytest.raises(ConfigError, match=r"mixer\.heads: mixer 'fnet' takes no heads"):
        validate(one_block(MixerConfig(type="fnet", heads=2)))


# --- FNet -------------------------------------------------------------------------------------


def test_fnet_is_parameter_free_2d_fft_real_part():
    mixer = make("fnet", heads=None)
    assert sum(p.numel() for p in mixer.parameters()) == 0
    x = torch.randn(2, GRID.tokens, DIM)
    out = mixer(x, ForwardContext(grid=GRID))
    torch.testing.assert_close(out, torch.fft.fft2(x).real)
    # Re(FFT_seq(FFT_hidden(x))), as the paper writes it, in float64 as an independent reference
    x64 = x.double()
    ref = torch.fft.fft(torch.fft.fft(x64, dim=-1), dim=-2).real
    torch.testing.assert_close(out.double(), ref, atol=1e-3, rtol=1e-5)
    half = mixer(x.bfloat16(), ForwardContext(grid=GRID))
    assert half.dtype == torch.bfloat16 and torch.isfinite(half).all()
