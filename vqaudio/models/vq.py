"""The vector-quantisation bottleneck of the VQ-VAE (van den Oord et al. 2017, section 3).

Nearest-neighbour assignment of each D-dim encoder output to one of K codes, the straight-through gradient
copy z_q = z_e + sg[e - z_e], and the loss of eq. 3 without its reconstruction term:

    ||sg[z_e] - e||^2 + beta ||z_e - sg[e]||^2        (squared errors averaged over elements)

Options, each off/on in `VQConfig`:
- `ema`: codebook as exponential moving averages of assigned vectors (paper appendix A.1; decay 0.99,
  Laplace-smoothed counts); the codebook term of the loss is then dropped.
- `kmeans_init`: codebook from a few Lloyd iterations on the first training batch (k-means++ or random seeds).
- `dead_code_steps`: every code unused over the last `dead_code_steps` training steps is re-seeded from
  random encoder outputs of the current batch (this kept 507-512 of 512 codes alive on the project's
  prototype, where a small-EMA-count threshold left 9).
- `jitter`: time jitter (Chorowski et al. 2019): in training each frame takes its left or right neighbour's
  quantised vector, each with probability jitter / 2.

Under torch.distributed the counts and sums behind EMA, usage and dead-code restart are all-reduced and
k-means / re-seeded vectors come from rank 0, so replicas stay identical.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

from vqaudio.config import VQConfig
from vqaudio.errors import ConfigError

_LAPLACE_EPS = 1e-5  # additive smoothing of EMA counts (Sonnet's VectorQuantizerEMA uses the same)
_SEEDINGS = ("kmeans++", "random")


@dataclass
class VQOutput:
    """Result of quantising z_e [B, D, N]."""

    z_q: Tensor  # [B, D, N] quantised latents, straight-through (and time-jittered in training)
    codes: Tensor  # LongTensor [B, N], nearest code of each frame (before jitter)
    loss: Tensor  # scalar: codebook + beta * commitment (EMA mode: beta * commitment)
    commitment: Tensor  # scalar: mean ||z_e - sg[e]||^2 per element
    perplexity: Tensor  # scalar: exp(entropy) of this batch's code distribution


class VectorQuantizer(nn.Module):
    """K codes of dimension D; see the module docstring for the options.

    State (all in the state_dict): `codebook` [K, D] (a buffer in EMA mode, a parameter otherwise),
    `ema_count` [K], `ema_sum` [K, D], `initialised` (bool), `usage_counts` [usage_window, K] (per-step code
    counts, a ring), `last_used` [K] and `steps` (training steps seen).
    """

    def __init__(self, cfg: VQConfig):
        super().__init__()
        check_vq_config(cfg)
        self.cfg = cfg
        K, D = cfg.codebook_size, cfg.dim
        init = torch.randn(K, D)
        if cfg.ema:
            self.register_buffer("codebook", init)
        else:
            self.codebook = nn.Parameter(init)
        self.register_buffer("ema_count", torch.ones(K))
        self.register_buffer("ema_sum", init.clone())
        self.register_buffer("initialised", torch.tensor(not cfg.kmeans_init))
        self.register_buffer("usage_counts", torch.zeros(cfg.usage_window, K))
        self.register_buffer("last_used", torch.zeros(K, dtype=torch.long))
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))

    def forward(self, z_e: Tensor) -> VQOutput:
        """z_e [B, D, N] -> VQOutput. In training mode also updates EMA, usage and dead codes."""
        B, D, N = z_e.shape
        flat = z_e.transpose(1, 2).reshape(-1, D)  # [B*N, D]
        if self.training:
            with torch.no_grad():
                self._maybe_kmeans_init(flat.detach().float())
                self._restart_dead_codes(flat.detach().float())
        codes = self._nearest(flat.detach())
        e = F.embedding(codes, self.codebook)  # [B*N, D]; gradient reaches the codebook (non-EMA mode)
        commitment = F.mse_loss(flat.float(), e.detach())
        loss = self.cfg.beta * commitment
        if not self.cfg.ema:
            loss = loss + F.mse_loss(e, flat.detach().float())
        z_q = (flat + (e - flat).detach()).view(B, N, D).transpose(1, 2)  # straight-through copy
        counts = torch.bincount(codes, minlength=self.cfg.codebook_size).float()
        if self.training:
            with torch.no_grad():
                self._update_statistics(codes, flat.detach().float(), counts.clone())
            if self.cfg.jitter > 0:
                z_q = time_jitter(z_q, self.cfg.jitter)
        return VQOutput(z_q, codes.view(B, N), loss, commitment, perplexity(counts))

    @torch.no_grad()
    def quantize(self, z_e: Tensor) -> Tensor:
        """Nearest codes, no state change: z_e [B, D, N] -> LongTensor [B, N]."""
        B, D, N = z_e.shape
        return self._nearest(z_e.transpose(1, 2).reshape(-1, D)).view(B, N)

    def lookup(self, codes: Tensor) -> Tensor:
        """Code vectors: LongTensor [B, N] -> [B, D, N]."""
        return F.embedding(codes, self.codebook).transpose(1, 2)

    def usage(self) -> tuple[float, float]:
        """(perplexity, fraction of the K codes used) over the last `usage_window` training steps; (0, 0) before any."""
        total = self.usage_counts.sum(0)
        if total.sum() <= 0:
            return 0.0, 0.0
        return float(perplexity(total)), float((total > 0).float().mean())

    def _nearest(self, flat: Tensor) -> Tensor:
        """Index of the nearest code (squared Euclidean) for each row of flat [M, D] -> [M]."""
        return torch.cdist(flat.float(), self.codebook.detach().float()).argmin(dim=1)

    def _maybe_kmeans_init(self, flat: Tensor) -> None:
        """On the first training batch: codebook <- k-means of the batch's vectors (rank 0's, broadcast)."""
        if self.initialised:
            return
        centres, counts = kmeans(flat, self.cfg.codebook_size, self.cfg.kmeans_iters, self.cfg.kmeans_seeding)
        _broadcast(centres)
        _broadcast(counts)
        counts = counts.clamp(min=1.0)
        self.codebook.data.copy_(centres)
        self.ema_count.copy_(counts)
        self.ema_sum.copy_(centres * counts[:, None])
        self.initialised.fill_(True)

    def _restart_dead_codes(self, flat: Tensor) -> None:
        """Re-seed every code unused over the last `dead_code_steps` steps from random rows of flat [M, D]."""
        window = self.cfg.dead_code_steps
        if window <= 0:
            return
        dead = (self.steps - self.last_used) >= window  # identical on all ranks: counts were all-reduced
        n = int(dead.sum())
        if n == 0:
            return
        picks = flat[torch.randint(flat.shape[0], (n,), device=flat.device)]
        picks = picks + 0.01 * flat.std() * torch.randn_like(picks)  # duplicates (n > M) must not coincide
        _broadcast(picks)
        self.codebook.data[dead] = picks
        self.ema_count[dead] = 1.0
        self.ema_sum[dead] = picks
        self.last_used[dead] = self.steps  # a grace period of `window` steps

    def _update_statistics(self, codes: Tensor, flat: Tensor, counts: Tensor) -> None:
        """Usage ring, last-used steps and (EMA mode) the codebook, from this step's all-reduced counts."""
        _all_reduce(counts)
        step = int(self.steps)
        self.usage_counts[step % self.cfg.usage_window] = counts
        self.last_used[counts > 0] = step + 1
        self.steps += 1
        if self.cfg.ema:
            sums = torch.zeros_like(self.ema_sum).index_add_(0, codes, flat)
            _all_reduce(sums)
            self._ema_update(counts, sums)

    def _ema_update(self, counts: Tensor, sums: Tensor) -> None:
        """Appendix A.1: N_i <- g N_i + (1-g) n_i, m_i <- g m_i + (1-g) sum z, e_i = m_i / N_i (Laplace-smoothed)."""
        decay = self.cfg.ema_decay
        self.ema_count.mul_(decay).add_(counts, alpha=1 - decay)
        self.ema_sum.mul_(decay).add_(sums, alpha=1 - decay)
        n = self.ema_count.sum()
        smoothed = (self.ema_count + _LAPLACE_EPS) / (n + self.cfg.codebook_size * _LAPLACE_EPS) * n
        self.codebook.copy_(self.ema_sum / smoothed[:, None])


def perplexity(counts: Tensor) -> Tensor:
    """exp(entropy) of the distribution given by non-negative counts [K] (1 = one code, K = uniform)."""
    p = counts.float() / counts.sum().clamp(min=1e-12)
    return torch.exp(-(p * torch.log(p.clamp(min=1e-12))).sum())


def time_jitter(z: Tensor, p: float) -> Tensor:
    """Chorowski et al. 2019: each frame of z [B, D, N] takes its left (prob p/2) or right (p/2) neighbour's
    vector; edges keep their own. Gradients flow to the vector actually used."""
    B, D, N = z.shape
    r = torch.rand(B, N, device=z.device)
    offset = (r < p).long() * torch.where(r < p / 2, -1, 1)
    index = (torch.arange(N, device=z.device) + offset).clamp(0, N - 1)
    return z.gather(2, index[:, None, :].expand(B, D, N))


def kmeans(x: Tensor, k: int, iters: int, seeding: str = "kmeans++") -> tuple[Tensor, Tensor]:
    """Lloyd's k-means on x [M, D] -> (centres [k, D], cluster sizes [k]). Empty clusters keep their seed."""
    centres = _seed(x, k, seeding)
    for _ in range(iters):
        assign = torch.cdist(x, centres).argmin(dim=1)
        sizes = torch.bincount(assign, minlength=k).float()
        sums = torch.zeros_like(centres).index_add_(0, assign, x)
        centres = torch.where(sizes[:, None] > 0, sums / sizes.clamp(min=1)[:, None], centres)
    sizes = torch.bincount(torch.cdist(x, centres).argmin(dim=1), minlength=k).float()
    return centres, sizes


def _seed(x: Tensor, k: int, seeding: str) -> Tensor:
    """k initial centres from rows of x [M, D]: uniform sample, or k-means++ (Arthur & Vassilvitskii 2007)."""
    M = x.shape[0]
    if seeding == "random":
        index = torch.randperm(M, device=x.device)[:k] if M >= k else torch.randint(M, (k,), device=x.device)
        return x[index].clone()
    chosen = [int(torch.randint(M, ()))]
    d2 = ((x - x[chosen[0]]) ** 2).sum(1)
    for _ in range(k - 1):
        total = d2.sum()
        probs = d2 / total if total > 0 else torch.full_like(d2, 1.0 / M)
        i = int(torch.multinomial(probs, 1))
        chosen.append(i)
        d2 = torch.minimum(d2, ((x - x[i]) ** 2).sum(1))
    return x[chosen].clone()


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _all_reduce(t: Tensor) -> None:
    if _distributed():
        dist.all_reduce(t)


def _broadcast(t: Tensor) -> None:
    if _distributed():
        dist.broadcast(t, src=0)


def check_vq_config(cfg: VQConfig) -> None:
    """Refuse invalid or conflicting VQ options with one clear line (ConfigError)."""
    problems = []
    if cfg.codebook_size < 2:
        problems.append(f"codebook_size must be >= 2, got {cfg.codebook_size}")
    if cfg.dim < 1:
        problems.append(f"dim must be >= 1, got {cfg.dim}")
    if not (cfg.beta >= 0 and math.isfinite(cfg.beta)):
        problems.append(f"beta must be a finite number >= 0, got {cfg.beta}")
    if cfg.ema and not 0.0 < cfg.ema_decay < 1.0:
        problems.append(f"ema_decay must be in (0, 1) with ema on, got {cfg.ema_decay}")
    if not 0.0 <= cfg.jitter <= 1.0:
        problems.append(f"jitter is a probability in [0, 1], got {cfg.jitter}")
    if cfg.dead_code_steps < 0 or cfg.usage_window < 1 or cfg.kmeans_iters < 0:
        problems.append("dead_code_steps and kmeans_iters must be >= 0, usage_window >= 1")
    if cfg.kmeans_seeding not in _SEEDINGS:
        problems.append(f"kmeans_seeding must be one of {', '.join(_SEEDINGS)}, got {cfg.kmeans_seeding!r}")
    if cfg.ema and cfg.beta == 0:
        problems.append("ema with beta = 0 leaves no VQ loss at all; the encoder would drift from the codebook")
    if problems:
        raise ConfigError("model.vq: " + "; ".join(problems))
