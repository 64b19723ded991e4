"""Design + priors + plan -> ``pm.Model``.

Parameterization (lme4's): each level's effects are ``u = L v`` with
``L = diag(sd) R`` (R the Cholesky factor of the correlation matrix, from an
LKJ prior sampled through :class:`bayeslmm.pymc_model.lkj.CPCTransform` for correlated
blocks, the identity otherwise).

- Sampled factors are non-centred, ``z ~ N(0, I)``, ``r = z L^T``, or, where
  their effects are uncorrelated, partially non-centred per level and effect
  (:mod:`bayeslmm.pymc_model.centring`): ``z_jk ~ N(0, sd_k^(2 w_jk))``,
  ``r_jk = sd_k^(1 - w_jk) z_jk``; a factor nested in another sampled one is
  centred around its parent level's effects (``z_jk ~ N(w_jk r_pk, ...)``),
  the outermost one on the model intercept; without nesting, the crossed
  factor with the most centred intercepts is centred on the intercept
  (:func:`_intercept_centred`).
  The mean gathers ``r[:, k][group_index]`` one effect at a time (no dense Z).
- Marginalized factors do not appear as parameters: the likelihood is the
  exact marginal density from :mod:`bayeslmm.ops`, and their effects are
  drawn afterwards by :mod:`bayeslmm.posterior.recover`. Their SDs are sampled signed,
  ``sd = |s|`` with ``s`` under the mirrored half-normal/t/Cauchy prior, not
  as ``log sd`` (:func:`_scale_factor`): an SD that may be 0 has no long
  left tail to explore.

Fixed effects use brms's centring: the free intercept is that of the centred
predictors (``Intercept_centered``); ``fixef`` holds the coefficients of the
columns as written.
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor.tensor as pt
from pytensor.tensor.slinalg import block_diag

from bayeslmm.distributed import check_dask_plan
from bayeslmm.model.design import nested_in
from bayeslmm.model.priors import whole_of
from bayeslmm.ops import MarginalData, marginal_loglik

from .centring import centring_weights
from .laplace import add_laplace_likelihood
from .lkj import CPCTransform, cholesky_of_corr

__all__ = ["build_model", "coords_of", "marginal_data"]


def _dist(family, args, dist_only=False, **kw):
    """PyMC distribution for a resolved prior (``dist_only``: unnamed ``.dist``)."""
    table = {
        "normal": (pm.Normal, ("mu", "sigma")),
        "student_t": (pm.StudentT, ("nu", "mu", "sigma")),
        "cauchy": (pm.Cauchy, ("alpha", "beta")),
        "exponential": (pm.Exponential, ("lam",)),
        "gamma": (pm.Gamma, ("alpha", "beta")),
        "lognormal": (pm.LogNormal, ("mu", "sigma")),
        "half_normal": (pm.HalfNormal, ("sigma",)),
        "half_student_t": (pm.HalfStudentT, ("nu", "sigma")),
        "half_cauchy": (pm.HalfCauchy, ("beta",)),
        "flat": (pm.Flat, ()),
    }
    cls, names = table[family]
    params = dict(zip(names, args))
    if dist_only:
        return cls.dist(**params, **kw)
    return cls(**params, **kw)


def _vector_rv(name, priors, dim):
    """One vector RV when all priors share a family, else one scalar RV each, stacked."""
    fams = {p.dist for p in priors}
    if len(fams) == 1:
        args = tuple(np.array([p.args[i] for p in priors]) for i in range(len(priors[0].args)))
        return _dist(priors[0].dist, args, name=name, dims=dim)
    return pt.stack([_dist(p.dist, p.args, name=f"{name}[{p.coef}]") for p in priors])


def coords_of(design) -> dict:
    coords = {"fixef_term": list(design.fixed_names),
              "b_term": [c for c in design.fixed_names if c != "Intercept"]}
    for blk in design.blocks:
        coords[f"{blk.name}__level"] = list(blk.levels)
        coords[f"{blk.name}__effect"] = list(blk.terms)
        coords[f"{blk.name}__effect_bis"] = list(blk.terms)
    return coords


def _fixed_effects(design, priors):
    """Return (mean contribution, coefficient vector in X's column order)."""
    X = design.X
    names = list(design.fixed_names)
    slope_idx = [i for i, c in enumerate(names) if c != "Intercept"]
    b_priors = {p.coef: p for p in priors if p.cls == "b"}
    # A design summarised by sufficient statistics (a Dask frame) has no rows: no mean per row.
    mu = pt.zeros(design.n) if X is not None else None
    x_mean = design.moments().x_mean
    coefs = [None] * len(names)
    if slope_idx:
        pri = [b_priors[names[i]] for i in slope_idx]
        b = _vector_rv("b", pri, "b_term")
        if X is not None:
            Xs = X[:, slope_idx]
            if design.has_intercept:
                Xs = Xs - x_mean[slope_idx]  # brms centring: decorrelates intercept and slopes
            mu = mu + pt.dot(Xs, b)
        for j, i in enumerate(slope_idx):
            coefs[i] = b[j]
    if design.has_intercept:
        p = next(p for p in priors if p.cls == "Intercept")
        ic = _dist(p.dist, p.args, name="Intercept_centered")
        mu = mu + ic if mu is not None else None
        shift = pt.dot(x_mean[slope_idx], b) if slope_idx else 0.0
        coefs[names.index("Intercept")] = ic - shift
    beta = pm.Deterministic("fixef", pt.stack(coefs), dims="fixef_term") if names else pt.zeros(0)
    return mu, beta


def _scale_factor(blk, priors, signed=False):
    """Build L = diag(s) R for one factor; registers sd_<g> (and cor_<g>).

    ``signed`` (marginalized factors): where the SD prior is a half-normal,
    half-t or half-Cauchy, ``s`` is sampled on the whole real line under the
    mirrored prior and ``sd = |s|``. The marginal likelihood depends on ``L``
    only through ``L L^T = diag(s) R R^T diag(s)``, a smooth function of
    ``s`` (and the same for ``-s``; the LKJ prior is symmetric under the sign
    flips too), so the posterior of ``|s|`` and of the correlations
    ``cor = D R R^T D`` (``D = diag(sign s)``) is the model's, but an SD that
    may be near 0 is no longer sampled as ``log sd``, whose long left tail
    NUTS explores slowly (docs/marginalization.md has the measurements).
    """
    sd_pri = {p.coef: p for p in priors if p.cls == "sd" and p.group == blk.name}
    cor = next((p for p in priors if p.cls == "cor" and p.group == blk.name), None)
    Rs, ss, any_signed = [], [], False
    for k, grp in enumerate(blk.corr_groups):
        pri = [sd_pri[blk.terms[i]] for i in grp]
        suffix = "" if len(blk.corr_groups) == 1 else f"_{k}"
        args = pri[0].args if len(grp) == 1 else tuple(np.array([p.args[i] for p in pri])
                                                          for i in range(len(pri[0].args)))
        # The mirrored prior (normal, Student-t, Cauchy) of a half one; others keep log sd.
        whole = whole_of(pri[0].dist, args) if signed else None
        dist = whole or (pri[0].dist, args)
        if len(grp) == 1:
            name = f"sd_{blk.name}__{blk.terms[grp[0]]}"
            s = _dist(*dist, name=f"{name}__raw" if whole else name)
            Rs.append(pt.ones((1, 1)))
            ss.append(s.reshape((1,)))
        else:
            # SDs and correlations apart (brms's parameterization): lkj.py says why not LKJCholeskyCov.
            d = len(grp)
            s = _dist(*dist, name=f"sd_{blk.name}{suffix}__raw", shape=d)
            ss.append(s)
            c = pm.LKJCorr(f"cor_{blk.name}{suffix}__raw", n=d, eta=cor.args[0], default_transform=None,
                           transform=CPCTransform(d))
            Rs.append(cholesky_of_corr(c, d))
        any_signed = any_signed or whole is not None
    R = Rs[0] if len(Rs) == 1 else block_diag(*Rs)
    s = pt.concatenate(ss)
    pm.Deterministic(f"sd_{blk.name}", pt.abs(s) if any_signed else s, dims=f"{blk.name}__effect")
    if blk.correlated:
        corr = pt.dot(R, R.T)
        if any_signed:
            sign = pt.switch(pt.ge(s, 0.0), 1.0, -1.0)
            corr = corr * sign[:, None] * sign[None, :]
        pm.Deterministic(f"cor_{blk.name}", corr, dims=(f"{blk.name}__effect", f"{blk.name}__effect_bis"))
    return s[:, None] * R


def marginal_data(design, plan) -> MarginalData:
    """Precompute (once, before sampling) what the marginal likelihood needs."""
    if design.X is None:  # summarised by sufficient statistics (a Dask frame): plan "all" only
        check_dask_plan(plan)
        return design.md
    factors = [b for b in design.blocks if b.name in plan.marginalized]
    # Precision weights (gaussian/lognormal) keep the marginal exact: weighted cross-products.
    return MarginalData.build(design.y, design.X, factors, sufficient=plan.sufficient, weights=design.weights)


def _parents(design, plan):
    """Index of each sampled factor nested in another sampled one -> (index of its parent, parent level of each level).

    The parent is the nesting factor with the most levels (batch for
    batch:cask within batch, and for a/b/c the b of c).
    """
    blocks = design.blocks
    out = {}
    for i, b in enumerate(blocks):
        if b.name in plan.marginalized:
            continue
        outer = [o for o, c in enumerate(blocks) if c is not b and c.name not in plan.marginalized
                 and nested_in(b, c)]
        if not outer:
            continue
        o = max(outer, key=lambda o: blocks[o].n_levels)
        parent_level = np.zeros(b.n_levels, dtype=int)
        parent_level[b.group_index] = blocks[o].group_index
        out[i] = (o, parent_level)
    return out


def _centring(design, plan, partial_centring):
    """Factor name -> (weights of :mod:`~bayeslmm.pymc_model.centring`, parent) for the sampled, uncorrelated factors.

    ``parent`` is ``None`` or ``(parent's name, parent level of each level)``:
    a nested factor is centred around its parent level's effects, which its
    effects would otherwise trade off against.
    """
    if not partial_centring:
        return {}
    names = [b.name for b in design.blocks if b.name not in plan.marginalized and not b.correlated]
    if not names:
        return {}
    parents = _parents(design, plan)
    ws = centring_weights(design.y, design.X, design.blocks, parents=parents)
    out = {}
    for i, (b, w) in enumerate(zip(design.blocks, ws)):
        if b.name not in names:
            continue
        par = parents.get(i)
        # A correlated parent is non-centred; its effects can still serve as the centre.
        out[b.name] = (w, None if par is None else (design.blocks[par[0]].name, par[1]))
    return out


#: Mean centring weight of a crossed factor's intercepts above which they are centred on the model intercept.
INTERCEPT_CENTRE_W = 0.75


def _intercept_centred(design, centring):
    """The sampled factor whose intercepts are centred on the model intercept when no factor is nested in another.

    The data see a mostly centred factor's intercepts ``z_j`` (``w_j`` near 1)
    only through ``Intercept + z_j``, so the model intercept and the mean of
    the ``z_j`` trade off along a ridge and the intercept mixes slowly
    (docs/benchmarks.md, bench_glmm_speed.py). Centred on it, ``z_j ~ N(w_j Intercept, sd^(2 w_j))`` and
    ``r_j = sd^(1 - w_j) (z_j - w_j Intercept)`` (the same model: a shift of
    ``z`` by a function of the other parameters has unit Jacobian), the data
    see ``z_j`` directly where ``w_j = 1``, as for a nested factor's parent.
    Crossed factors all add to the same intercept, so only one can take it:
    the one whose intercepts are the most centred (mean weight over levels),
    if that mean exceeds :data:`INTERCEPT_CENTRE_W`; else None. Below it the
    prior's pull ``z_j ~ N(w_j Intercept, ...)`` over many levels ties the
    intercept to the ``z_j`` more than the data did (docs/benchmarks.md has
    both cases). Cost O(sum of levels).
    """
    if not design.has_intercept:
        return None
    best, best_w = None, INTERCEPT_CENTRE_W
    for b in design.blocks:
        if b.name not in centring or "Intercept" not in b.terms:
            continue
        w = float(np.mean(centring[b.name][0][:, list(b.terms).index("Intercept")]))
        if w > best_w:
            best, best_w = b.name, w
    return best


def _sampled_effects(blk, L, w, centre=None):
    """Register ``z_<g>`` and ``r_<g>`` (levels x effects) of a sampled factor; return ``r``.

    ``centre``: ``None`` or what ``z`` is centred on where ``w = 1`` (levels x effects).
    """
    dims = (f"{blk.name}__level", f"{blk.name}__effect")
    if w is None or not w.any():
        z = pm.Normal(f"z_{blk.name}", 0.0, 1.0, dims=dims)
        return pm.Deterministic(f"r_{blk.name}", pt.dot(z, L.T), dims=dims)
    parent = centre
    centre = 0.0 if parent is None else w * parent
    if parent is None and (w == w[:1]).all():
        # Balanced data give every level the same weights. As an (n_levels, d) constant with one
        # unique value, PyTensor's local_inline_composite_constants inlines it, then re-broadcasts
        # every output of the fused Composite with the first one's dtype (here the bool check
        # scale > 0 of pm.Normal): a "BUG IN FGRAPH.REPLACE" traceback at each compilation.
        # One row broadcasts to the same model.
        w = w[:1]
    sd = pt.diagonal(L)[None, :]  # L = diag(sd) for uncorrelated effects
    # sd^w as exp(w log sd), log sd taken once per effect rather than a power
    # (a log and an exp) per level, which dominates the gradient on many levels.
    # The floor keeps an SD that underflows to 0 from giving 0 * -inf where w = 0.
    scale = pt.exp(w * pt.log(pt.maximum(sd, 1e-300)))
    z = pm.Normal(f"z_{blk.name}", centre, scale, dims=dims)
    return pm.Deterministic(f"r_{blk.name}", (z - centre) * (sd / scale), dims=dims)


def _row_effects(blk, r):
    """Each row's ``sum_k values_ik r_{g(i) k}``, one 1-D gather per effect; O(N d).

    Gathering whole rows of ``r`` (``r[g]``, N x d) and summing across them
    costs more, value and gradient, than d gathers of columns: the gradient
    of a row gather is a scatter-add of N x d rows (docs/benchmarks.md,
    bench_glmm_speed.py). An all-ones column (an intercept) is not multiplied.
    """
    g = blk.group_index
    out = 0.0
    for k in range(blk.dim):
        col = blk.values[:, k]
        term = r[:, k][g]
        out = out + (term if np.all(col == 1.0) else col * term)
    return out


def _observation_dist(design, eta, aux):
    """The family's distribution of y given the linear predictor ``eta`` (unnamed ``.dist``)."""
    fam = design.family
    name = fam.name
    if name == "gaussian":
        return pm.Normal.dist(eta, aux["sigma"]), design.y
    if name == "lognormal":
        return pm.LogNormal.dist(eta, aux["sigma"]), design.y_original
    if name == "student":
        return pm.StudentT.dist(nu=aux["nu"], mu=eta, sigma=aux["sigma"]), design.y_original
    if name in ("bernoulli", "binomial"):
        n = design.trials if name == "binomial" else None
        if fam.link == "logit":
            d = pm.Binomial.dist(n, logit_p=eta) if n is not None else pm.Bernoulli.dist(logit_p=eta)
        else:
            p = pm.math.invprobit(eta)
            d = pm.Binomial.dist(n, p=p) if n is not None else pm.Bernoulli.dist(p=p)
        return d, design.y_original.astype(np.int64)
    if name == "poisson":
        return pm.Poisson.dist(pt.exp(eta)), design.y_original.astype(np.int64)
    if name == "negbinomial":
        return pm.NegativeBinomial.dist(mu=pt.exp(eta), alpha=aux["shape"]), design.y_original.astype(np.int64)
    raise ValueError(f"No likelihood for family {name!r}.")


def _likelihood(design, eta, aux):
    """Register the likelihood of every row with every effect sampled.

    Offsets: for Gaussian families they are already subtracted from ``design.y``;
    for the others they enter ``eta``. Weights: lme4's precision weights
    (residual SD sigma / sqrt(w_i)) for gaussian and lognormal, brms's
    log-likelihood weights (each term times w_i) for the other families.
    """
    fam = design.family
    if not fam.gaussian:
        eta = eta + design.offset
    w = design.weights
    if w is not None and fam.gaussian:
        sd = aux["sigma"] / np.sqrt(np.maximum(w, 1e-300))
        keep = w > 0  # a zero precision weight removes the row (infinite variance)
        eta_k = eta[np.flatnonzero(keep)] if not keep.all() else eta
        sd_k = sd[keep] if not keep.all() else sd
        if fam.log_scale:
            pm.LogNormal("y", eta_k, sd_k, observed=design.y_original[keep])
        else:
            pm.Normal("y", eta_k, sd_k, observed=design.y[keep])
        return
    dist, observed = _observation_dist(design, eta, aux)
    if w is None:
        # The observed variable itself, so PyMC's predictive tools see it.
        pm.modelcontext(None).register_rv(dist, "y", observed=observed)
    else:
        pm.Potential("y_weighted", (w * pm.logp(dist, observed)).sum())


def build_model(design, priors, plan, md=None, partial_centring=True, signed_sds=True) -> pm.Model:
    """Assemble the PyMC model for ``design`` with resolved ``priors`` under ``plan``.

    ``partial_centring=False`` keeps every sampled factor non-centred (the
    same model, another parameterization; :mod:`bayeslmm.pymc_model.centring`).
    ``signed_sds=False`` samples every SD as ``log sd`` (the same model;
    see :func:`_scale_factor` for the signed SDs of marginalized factors).

    Cost per log-density evaluation: O(N (p + sum_k d_k)) for the sampled
    part; the marginal likelihood's cost is given in :mod:`bayeslmm.ops`.
    """
    # Priors and parameters are checked before the model is built (bayeslmm.model.checks);
    # check_bounds=False leaves PyMC's run-time checks, which JAX cannot run, out of the graph.
    with pm.Model(coords=coords_of(design), check_bounds=False) as model:
        mu, beta = _fixed_effects(design, priors)
        Ls = {}
        offset = pt.zeros(design.n)
        centring = _centring(design, plan, partial_centring)
        locs = {}
        parent_names = {par[0] for _, par in centring.values() if par is not None}
        crossed_centre = _intercept_centred(design, centring) if not parent_names else None
        ic = model["Intercept_centered"] if design.has_intercept else None
        # Parents (fewer levels) before the factors nested in them, whose centre they are.
        for blk in sorted(design.blocks, key=lambda b: b.n_levels):
            L = _scale_factor(blk, priors, signed=signed_sds and blk.name in plan.marginalized)
            Ls[blk.name] = L
            if blk.name in plan.marginalized:
                # Read back by recover.py to draw the effects; dropped from the posterior there.
                pm.Deterministic(f"L_{blk.name}", L)
                continue
            w, par = centring.get(blk.name, (None, None))
            # Hierarchical centring: a nested factor's effects are centred on its parent level's
            # location (the intercept plus the parent's effect), the outermost factor on the intercept.
            centre = None
            if par is not None and par[0] in locs:
                pblk = next(b for b in design.blocks if b.name == par[0])
                of = {t: k for k, t in enumerate(pblk.terms)}
                if any(t in of for t in blk.terms):
                    # The parent's location under each of the child's columns (0 where it has none).
                    cols = [locs[pblk.name][:, of[t]] if t in of else pt.zeros(pblk.n_levels) for t in blk.terms]
                    centre = pt.stack(cols, axis=1)[par[1]]
            elif par is None and (blk.name in parent_names or blk.name == crossed_centre) and ic is not None \
                    and "Intercept" in blk.terms:
                centre = pt.stack([ic if t == "Intercept" else pt.zeros(()) for t in blk.terms])[None, :]
            r = _sampled_effects(blk, L, w, centre)
            if blk.name in parent_names:
                locs[blk.name] = r if centre is None else r + centre
            offset = offset + _row_effects(blk, r)
        aux = {a: _dist(p.dist, p.args, name=a) for a in design.family.aux
               for p in priors if p.cls == a}
        if not plan.marginalized:
            _likelihood(design, mu + offset, aux)
        elif plan.approximation == "laplace":
            md = md if md is not None else marginal_data(design, plan)
            add_laplace_likelihood(design, md, beta, [Ls[n] for n in md.names], offset, aux)
        else:
            sigma = aux["sigma"]
            md = md if md is not None else marginal_data(design, plan)
            Lm = [Ls[n] for n in md.names]
            # mu holds the centred intercept; the Op wants X's own columns, so it gets beta.
            ll = marginal_loglik(md, beta, sigma, Lm, None if plan.sufficient else offset)
            pm.Potential("y_marginal", ll + design.log_jacobian)
    return model
