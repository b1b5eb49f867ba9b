"""Mixed-precision EM (``dtype="mixed"``, the ``gmm`` default): a float32 screen, float64 where it counts.

Most (code, component) pairs of a mixture have responsibilities far below anything float64 resolves; the
E-step only has to find the others.  The codes are split once into compact row blocks (the rows of one
initial cluster, at most ``max_rows``; clusters under MIN_BLOCK rows pooled), each centred on its own
mean ``c`` so that its numbers are small.  Per iteration and block:

1. screen in float32: ``logp = F(x - c) @ W_c.T`` (b, k), one GEMM over the block's cached float32
   feature map (gmm_em.features, stored transposed), ``W_c`` the log-probability weights in the block's
   frame; every entry is off by at most ``err = (p + 4) u |F(x - c)| |W_c|`` (the rounding bound of a
   length-p dot product with rounded inputs, ``u = 2^-24``);
2. candidates: the components with ``logp + err >= max(logp - err) + LOG_FLOOR`` for some row; the others
   have responsibilities below ``exp(LOG_FLOOR) ~ 1e-30`` and are left out;
3. exact float64 log-probabilities of the candidates from whitened codes ``L^-1 (x - mu)``, their
   responsibilities, and the sufficient statistics of the components that hold any (weighted Gram matrices),
   moved to the global frame and summed in float64.

So the result is that of float64 EM up to terms below 1e-30, at the cost of one float32 GEMM per
iteration plus float64 work on the few components near each block.  A badly conditioned component only
widens the screening bound (it becomes a candidate in more blocks), it never loses accuracy.
"""

from __future__ import annotations

import math

import torch

from latentatlas.latent.samplers import gmm_em as em

LOG_FLOOR = -69.0         # responsibilities below exp(-69) ~ 1e-30 are left out of a block's statistics
MIN_BLOCK = 32            # clusters with fewer rows are pooled into shared blocks
UNIT_ROUNDOFF = 2.0**-24  # of float32
CHUNK_BYTES = 64 * 2**20  # float64 temporaries of this size are built at once
GRAM_MAX = 4              # a block's statistics for more components come from its float64 feature map
PROBE_SHARE = 0.1         # em_pass(give_up_above=...) decides after the blocks of this share of the codes


class Blocks:
    """Centred codes ``x: (n, d)`` float64 in row blocks of one cluster of ``labels: (n,)`` each: per block its
    centre, rows centred on it (float64), labels, sums ``[b, sum x, sum x2]`` (block_stats), and its float32
    feature map with row norms (cached when ``cache``, else rebuilt when asked for)."""

    def __init__(self, x: torch.Tensor, labels: torch.Tensor, k: int, covariance: str, max_rows: int,
                 cache: bool) -> None:
        self.n, self.d = x.shape
        self.covariance = covariance
        counts = torch.bincount(labels, minlength=k)
        pooled = counts[labels] < MIN_BLOCK
        order = torch.argsort(labels + k * pooled.long(), stable=True)   # pooled rows last
        sizes = []
        for size in counts[counts >= MIN_BLOCK].tolist() + [int(pooled.sum())]:
            parts = -(-size // max(1, max_rows))
            sizes += [size // parts + (i < size % parts) for i in range(parts)]
        block = torch.repeat_interleave(torch.arange(len(sizes), device=x.device), torch.tensor(sizes, device=x.device))
        x = x[order]
        self.centres = torch.zeros(len(sizes), self.d, dtype=x.dtype, device=x.device).index_add_(0, block, x)
        self.centres /= torch.tensor(sizes, dtype=x.dtype, device=x.device)[:, None]
        x -= self.centres[block]
        self.rows, self.labels = x.split(sizes), labels[order].split(sizes)
        self.sums = torch.cat([block_stats(b, None, covariance) for b in self.rows])
        self._screen = None
        self.exact_share = 0.0   # of the (code, component) pairs, those the last em_pass computed exactly
        if cache:
            F = em.features(x.float(), covariance, transposed=True)
            self._screen = list(zip(F.split(sizes, dim=1), feature_norms(x, covariance).split(sizes)))

    def __len__(self) -> int:
        return len(self.rows)

    def screen_features(self, j: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Float32 feature map of block ``j``, transposed (p, b), and upper bounds of its row norms (b,)."""
        if self._screen is not None:
            return self._screen[j]
        x = self.rows[j]
        return em.features(x.float(), self.covariance, transposed=True), feature_norms(x, self.covariance)


def feature_norms(x: torch.Tensor, covariance: str) -> torch.Tensor:
    """Upper bounds (n,) float32 of the Euclidean norms of the feature maps of ``x: (n, d)`` float64, from
    ``|x|^2`` and ``sum x^4`` (the upper triangle of x x^T has squared norm ``(|x|^4 + sum x^4) / 2``)."""
    x2 = x * x
    s2, s4 = x2.sum(1), (x2 * x2).sum(1)
    sq = 1 + s2 + ((s2 * s2 + s4) / 2 if em.is_quadratic(covariance) else s4)
    return (sq.sqrt() * (1 + 1e-6)).float()


def frame_weights(W: torch.Tensor, covariance: str, centres: torch.Tensor) -> torch.Tensor:
    """Constant and linear weights ``(m, k, 1 + d)`` of the mixture in the frames centred on ``centres: (m, d)``
    (the quadratic part does not move): ``[log-probability at c, lin + 2 Q c]``, ``Q`` the quadratic form."""
    k, d = W.shape[0], centres.shape[1]
    const = em.features(centres, covariance) @ W.T                          # (m, k)
    quad = W[:, 1 + d:]
    if em.is_quadratic(covariance):
        rows = 1 if covariance == "tied" else k
        i, j = torch.triu_indices(d, d, device=W.device)
        Q2 = em.unpack_symmetric(quad[:rows] * torch.where(i == j, 2.0, 1.0).to(W.dtype), d)   # 2 Q
        grad = (centres @ Q2.reshape(rows * d, d).T).view(-1, rows, d)
    else:
        grad = 2 * quad[None] * centres[:, None, :]
    return torch.cat([const[..., None], W[None, :, 1:1 + d] + grad], dim=2)


def whitening(mix: em.Mixture, covariance: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``(T, base)``: ``log w_k + log N(x | k) = base_k - |y|^2 / 2`` with ``y`` the solution of
    ``T_k y = x - mu_k``: T the Cholesky factors (k, d, d) for full, (1, d, d) tied; for diag/spherical
    ``y = T_k * (x - mu_k)`` with T (k, d) the inverse standard deviations.  base (k,)."""
    w, mu, cov = mix.weights, mix.means, mix.covariances
    k, d = mu.shape
    base = torch.log(w) - 0.5 * d * math.log(2 * math.pi)
    if em.is_quadratic(covariance):
        L = mix.cholesky if mix.cholesky is not None else torch.linalg.cholesky(cov if covariance == "full"
                                                                                else cov[None])
        return L, base - torch.log(L.diagonal(dim1=-2, dim2=-1)).sum(-1)
    var = cov if covariance == "diag" else cov[:, None].expand(k, d)
    return var.rsqrt(), base - 0.5 * torch.log(var).sum(-1)


def exact_logprob(x: torch.Tensor, mu: torch.Tensor, T: torch.Tensor, base: torch.Tensor, cols: torch.Tensor,
                  covariance: str) -> torch.Tensor:
    """Float64 ``log w_k + log N(x | k)`` of codes ``x: (b, d)`` for the components ``cols``: (b, len(cols))
    (``mu`` in the frame of ``x``; ``T, base`` from whitening)."""
    out = x.new_empty(x.shape[0], len(cols))
    step = max(1, CHUNK_BYTES // (8 * x.numel()))
    for s in range(0, len(cols), step):
        c = cols[s:s + step]
        diff = x[None] - mu[c][:, None, :]                                   # (m, b, d)
        if em.is_quadratic(covariance):
            L = T[c] if covariance == "full" else T.expand(len(c), -1, -1)
            y = torch.linalg.solve_triangular(L.transpose(1, 2), diff, upper=True, left=False)   # y L^T = diff
        else:
            y = diff * T[c][:, None, :]
        out[:, s:s + step] = (base[c][:, None] - 0.5 * (y * y).sum(-1)).T
    return out


def block_stats(x: torch.Tensor, r: torch.Tensor | None, covariance: str) -> torch.Tensor:
    """Statistics ``[sum r, sum r x, sum r x2]`` (m, p) float64 of codes ``x: (b, d)`` with weights ``r: (b, m)``
    (``x2`` the upper triangle of ``x x^T`` for full/tied, ``x**2`` else), as gmm_em.m_step takes them;
    ``r=None``: one row of unit weights."""
    b, d = x.shape
    i, j = torch.triu_indices(d, d, device=x.device)
    if r is None:
        second = (x.T @ x)[i, j] if em.is_quadratic(covariance) else (x * x).sum(0)
        return torch.cat([x.new_full((1,), b), x.sum(0), second])[None]
    first = torch.cat([r.sum(0)[:, None], r.T @ x], dim=1)
    if not em.is_quadratic(covariance):
        return torch.cat([first, r.T @ (x * x)], dim=1)
    step = max(1, CHUNK_BYTES // (8 * x.numel()))
    second = [((r.T[s:s + step, :, None] * x).transpose(1, 2) @ x)[:, i, j] for s in range(0, r.shape[1], step)]
    return torch.cat([first, torch.cat(second)], dim=1)


def to_global(S: torch.Tensor, c: torch.Tensor, covariance: str) -> torch.Tensor:
    """Statistics (m, p) of codes ``x - c`` -> those of ``x`` (float64); ``c`` (d,) or one per row (m, d)."""
    d = c.shape[-1]
    s0, s1 = S[:, :1], S[:, 1:1 + d]
    out = S.clone()
    out[:, 1:1 + d].addcmul_(s0, c)
    second = out[:, 1 + d:]
    if em.is_quadratic(covariance):
        i, j = torch.triu_indices(d, d, device=S.device)
        ci, cj = c[..., i], c[..., j]
        second.addcmul_(s1[:, i], cj).addcmul_(ci, s1[:, j]).addcmul_(s0, ci * cj)
    else:
        second.addcmul_(s1, 2 * c).addcmul_(s0, c * c)
    return out


class _Statistics:
    """Sums block-frame statistics ``(components, block, S)`` into (k, p) global ones, moving them to the
    global frame in batches of about CHUNK_BYTES."""

    def __init__(self, blocks: Blocks, k: int, p: int, like: torch.Tensor) -> None:
        self.blocks, self.acc = blocks, like.new_zeros(k, p)
        self.parts: list[tuple[torch.Tensor, int, torch.Tensor]] = []
        self.limit, self.rows = max(1, CHUNK_BYTES // (8 * p)), 0

    def add(self, cols: torch.Tensor, j: int, S: torch.Tensor) -> None:
        self.parts.append((cols, j, S))
        self.rows += len(cols)
        if self.rows >= self.limit:
            self.flush()

    def flush(self) -> torch.Tensor:
        if self.parts:
            cols, js, S = zip(*self.parts)
            if len(set(js)) == 1:
                centres = self.blocks.centres[js[0]]
            else:
                centres = self.blocks.centres[[j for c, j in zip(cols, js) for _ in range(len(c))]]
            self.acc.index_add_(0, torch.cat(cols), to_global(torch.cat(S), centres, self.blocks.covariance))
            self.parts, self.rows = [], 0
        return self.acc


def em_pass(blocks: Blocks, W: torch.Tensor, mix: em.Mixture, covariance: str, *,
            give_up_above: float | None = None) -> tuple[torch.Tensor, torch.Tensor] | None:
    """One fused E + M-statistics pass: (sum of log-likelihoods, statistics (k, p)), both float64; sets
    ``blocks.exact_share``.  With ``give_up_above``: None as soon as the blocks of PROBE_SHARE of the codes
    have computed more than that share of their pairs exactly (``exact_share`` then that share): the
    screen does not pay on these codes, and the rest of the pass is not worth doing."""
    k, p = W.shape
    d = blocks.d
    T, base = whitening(mix, covariance)
    quad64 = W[:, 1 + d:]
    quad32, quad_sq = quad64.float(), (quad64 ** 2).sum(1)
    gamma = (p + 4) * UNIT_ROUNDOFF
    total = torch.zeros((), dtype=torch.float64, device=W.device)
    stats = _Statistics(blocks, k, p, total)
    exact_pairs = rows_done = 0
    probe_rows = PROBE_SHARE * blocks.n if give_up_above is not None else math.inf
    step = max(1, CHUNK_BYTES // (8 * max(k * (d + 1), p)))   # blocks whose frame weights are built at once
    for first in range(0, len(blocks), step):
        lin64 = frame_weights(W, covariance, blocks.centres[first:first + step])
        lin32 = lin64.float()
        bound = (gamma * ((lin64 ** 2).sum(-1) + quad_sq).sqrt()).float()   # (m, k): err / |F row|
        for j in range(first, min(first + step, len(blocks))):
            if rows_done >= probe_rows:
                probe_rows = math.inf
                if exact_pairs > give_up_above * rows_done * k:
                    blocks.exact_share = exact_pairs / (rows_done * k)
                    return None
            rows_done += blocks.rows[j].shape[0]
            Ft, fnorm = blocks.screen_features(j)
            logp = Ft[:1 + d].T @ lin32[j - first].T
            logp.addmm_(Ft[1 + d:].T, quad32.T)
            err = fnorm[:, None] * bound[j - first][None, :]
            low = (logp - err).amax(1, keepdim=True) + LOG_FLOOR
            cols = torch.nonzero(torch.lt(logp.add_(err), low).logical_not_().any(0)).flatten()   # NaN: kept
            if len(cols) == 1:   # the whole block in one component: r = 1, its statistics are its sums
                S = blocks.sums[j]   # log-likelihood: the Taylor expansion at c, with log N(c) exact
                at_c = exact_logprob(blocks.centres[j][None], mix.means, T, base, cols, covariance)[0, 0]
                total += S[0] * at_c + S[1:1 + d] @ lin64[j - first, cols[0], 1:] + S[1 + d:] @ quad64[cols[0]]
                stats.add(cols, j, S[None])
                continue
            x = blocks.rows[j]
            exact_pairs += x.shape[0] * len(cols)
            exact = exact_logprob(x, mix.means - blocks.centres[j], T, base, cols, covariance)
            norm = torch.logsumexp(exact, dim=1)
            total += norm.sum()
            r = torch.exp_(exact.sub_(norm[:, None]))
            used = torch.nonzero(r.amax(0) > math.exp(LOG_FLOOR)).flatten()
            if len(used) > GRAM_MAX:   # R.T F(x - c): p products per code and component, not 2 d^2
                stats.add(cols[used], j, r[:, used].T @ em.features(x, covariance))
            else:
                stats.add(cols[used], j, block_stats(x, r[:, used], covariance))
    blocks.exact_share = exact_pairs / (blocks.n * k)
    return total, stats.flush()


def hard_stats(blocks: Blocks, k: int) -> torch.Tensor:
    """Sufficient statistics (k, p) float64 of the blocks' cluster labels (each code wholly in its cluster)."""
    stats = _Statistics(blocks, k, blocks.sums.shape[1], blocks.sums)
    for j, (x, labels) in enumerate(zip(blocks.rows, blocks.labels)):
        present, inverse = torch.unique(labels, return_inverse=True)
        if len(present) == 1:
            stats.add(present, j, blocks.sums[j:j + 1])
        else:
            F = em.features(x, blocks.covariance)
            stats.add(present, j, F.new_zeros(len(present), F.shape[1]).index_add_(0, inverse, F))
    return stats.flush()
