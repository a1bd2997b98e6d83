#!/usr/bin/env python3
"""Faiss peer for the rabitq ANN benchmark.

Builds a few Faiss indexes on one base set, sweeps their search parameter and
prints ONE JSON document on stdout (progress goes to stderr).  Needs only
numpy and faiss (pip faiss-cpu 1.15.x; Debian's python3-faiss has no SIMD
dispatch).  See README.md in this folder for the output format.

Exit status: 0 when the run finished (a method that failed is reported with
"error" in its entries), 2 for bad arguments or unreadable input files.
"""
import argparse
import json
import os
import re
import sys
import time


def log(*parts):
    print("[faiss-peer]", *parts, file=sys.stderr, flush=True)


def usage_error(msg):
    print("faiss_peer.py: error: " + msg, file=sys.stderr, flush=True)
    sys.exit(2)


def early_thread_count(argv):
    """--threads value, read before numpy/faiss are imported so that their
    OpenMP / OpenBLAS pools start at the requested size."""
    for i, a in enumerate(argv):
        if a == "--threads" and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith("--threads="):
            return a.split("=", 1)[1]
    return "1"


_t = early_thread_count(sys.argv[1:])
if _t.isdigit() and int(_t) > 0:
    for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[_v] = _t

import numpy as np  # noqa: E402

try:
    import faiss  # noqa: E402
except ImportError as e:  # pragma: no cover - environment problem
    usage_error("cannot import faiss (pip install faiss-cpu==1.15.1): %s" % e)


METHODS = ("ivfflat", "ivfpq", "ivfrabitq", "ivfrabitq4", "hnsw")
# ivfrabitqnr<N> (N = 1..9): multi-bit IVF-RaBitQ FastScan with nb_bits N and
# no refine stage, i.e. no raw vectors kept: the peer of rabitq --no-vectors.
NO_REFINE_RABITQ = re.compile(r"^ivfrabitqnr([1-9])$")


def known_method(m):
    return m in METHODS or NO_REFINE_RABITQ.match(m) is not None
DEFAULT_NPROBE = "1,2,4,8,16,32,64,128,256,512"
DEFAULT_EF = "16,32,64,128,256,512"
REFINED = ("ivfpq", "ivfrabitq", "ivfrabitq4")
# 1-bit RaBitQ estimates are coarser than 4-bit PQ / 4-bit RaBitQ ones, so it
# gets a larger candidate pool (k_factor 20 caps recall@10 near 0.965 on a 100k
# prefix of sift1m-cv, 40 reaches 0.99; see README.md)
KFACTOR_DEFAULTS = {"ivfpq": 10.0, "ivfrabitq": 40.0, "ivfrabitq4": 10.0}
DEFAULT_KFACTOR = ",".join("%s=%g" % kv for kv in KFACTOR_DEFAULTS.items())


# ---------------------------------------------------------------- vector files
def _read_vecs(path, itemsize):
    """texmex layout: every row is an int32 dimension then dim components."""
    size = os.path.getsize(path)
    if size < 4:
        raise ValueError("%s: file too short" % path)
    with open(path, "rb") as f:
        dim = int(np.frombuffer(f.read(4), dtype="<i4")[0])
    if dim <= 0 or dim > 1 << 20:
        raise ValueError("%s: bad dimension field %d" % (path, dim))
    row = 4 + dim * itemsize
    if size % row:
        raise ValueError("%s: size %d is not a multiple of the row size %d" % (path, size, row))
    n = size // row
    raw = np.memmap(path, dtype=np.uint8, mode="r", shape=(n, row))
    heads = np.ascontiguousarray(raw[:, :4]).view("<i4").ravel()
    if (heads != dim).any():
        raise ValueError("%s: inconsistent dimension fields" % path)
    return raw, n, dim


def read_fvecs(path, limit=None):
    raw, n, d = _read_vecs(path, 4)
    n = n if limit is None else min(n, limit)
    return np.ascontiguousarray(raw[:n, 4:]).view("<f4").astype(np.float32, copy=False)


def read_bvecs(path, limit=None):
    raw, n, d = _read_vecs(path, 1)
    n = n if limit is None else min(n, limit)
    return np.asarray(raw[:n, 4:], dtype=np.float32)


def read_ivecs(path, limit=None):
    raw, n, d = _read_vecs(path, 4)
    n = n if limit is None else min(n, limit)
    return np.ascontiguousarray(raw[:n, 4:]).view("<i4").astype(np.int32, copy=False)


def count_rows(path):
    itemsize = 1 if path.endswith(".bvecs") else 4
    _, n, d = _read_vecs(path, itemsize)
    return n, d


def read_vectors(path, limit=None):
    if path.endswith(".bvecs"):
        return read_bvecs(path, limit)
    if path.endswith(".fvecs"):
        return read_fvecs(path, limit)
    raise ValueError("%s: expected a .fvecs or .bvecs file" % path)


# ---------------------------------------------------------------- arguments
def int_list(s, name):
    try:
        vals = [int(v) for v in s.split(",") if v.strip()]
    except ValueError:
        usage_error("--%s wants a comma separated list of integers, got %r" % (name, s))
    if not vals or min(vals) <= 0:
        usage_error("--%s wants positive integers, got %r" % (name, s))
    return vals


def parse_kfactor(s):
    """'10' or '10/20' -> every refined method; 'ivfpq=10,ivfrabitq=20/40' ->
    per method (methods not named keep their default).  Returns name -> list."""
    def nums(t):
        vals = [float(v) for v in t.replace("/", ",").split(",") if v.strip()]
        if not vals:
            raise ValueError(t)
        return vals
    try:
        if "=" not in s:
            v = nums(s)
            out = {m: list(v) for m in REFINED}
        else:
            out = {m: [v] for m, v in KFACTOR_DEFAULTS.items()}
            for item in s.split(","):
                if not item.strip():
                    continue
                m, v = item.split("=")
                m = m.strip()
                if m not in REFINED:
                    usage_error("--kfactor: %r is not one of %s" % (m, ",".join(REFINED)))
                out[m] = nums(v)
    except ValueError:
        usage_error("--kfactor wants N[/N...] or name=N[/N...],..., got %r" % s)
    if min(min(v) for v in out.values()) < 1:
        usage_error("--kfactor values must be >= 1")
    return {m: sorted(set(v)) for m, v in out.items()}


def parse_args(argv):
    ap = argparse.ArgumentParser(
        description="Faiss peer for the rabitq ANN benchmark (JSON on stdout).")
    ap.add_argument("--base", required=True, help="base vectors, .fvecs or .bvecs")
    ap.add_argument("--query", required=True, help="query vectors, .fvecs or .bvecs")
    ap.add_argument("--gt", required=True, help="ground truth .ivecs (nearest first)")
    ap.add_argument("--k", type=int, default=10, help="neighbours asked for (search uses max(10, k))")
    ap.add_argument("--metric", default="l2", choices=("l2", "cosine", "ip"),
                    help="l2 (default); cosine: vectors and queries normalized, searched by inner "
                         "product; ip: inner product (largest first)")
    ap.add_argument("--clusters", type=int, required=True, help="IVF lists (C)")
    ap.add_argument("--methods", default=",".join(METHODS),
                    help="comma list of " + ",".join(METHODS))
    ap.add_argument("--nprobe", default=DEFAULT_NPROBE, help="IVF sweep (values > C are dropped)")
    ap.add_argument("--efsearch", default=DEFAULT_EF, help="HNSW efSearch sweep")
    ap.add_argument("--runs", type=int, default=5, help="timed runs per sweep point (median)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed runs before the timed ones")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--centroids", help=".fvecs with C rows: fixed coarse quantizer for every IVF method")
    ap.add_argument("--nq", type=int, help="use the first NQ queries (default: all)")
    ap.add_argument("--nbase", type=int,
                    help="use the first NBASE base rows; exact ground truth is then recomputed")
    ap.add_argument("--mode", default="single,batch", help="single and/or batch")
    ap.add_argument("--kfactor", default=DEFAULT_KFACTOR,
                    help="refine k_factor (the IVF stage returns k*kfactor candidates that are "
                         "re-ranked with exact float32 distances): N[/N...] for every refined "
                         "method, or per method as name=N[/N...],... (default %s). With several "
                         "values for a method each gets its own method id, e.g. "
                         "faiss-ivfrabitq-kf20" % DEFAULT_KFACTOR)
    ap.add_argument("--qb", type=int, default=4, help="query bits of the RaBitQ indexes (1..8, default 4)")
    ap.add_argument("--rabitq-multibits", type=int, default=4, help="bits per dimension of ivfrabitq4")
    ap.add_argument("--hnsw-m", type=int, default=32)
    ap.add_argument("--ef-construction", type=int, default=40)
    ap.add_argument("--kmeans-niter", type=int, default=10)
    ap.add_argument("--kmeans-max-per-centroid", type=int, default=256)
    ap.add_argument("--ntrain", type=int, default=200000,
                    help="rows sampled to train the fine encoders (PQ / RaBitQ), default 200000")
    ap.add_argument("--seed", type=int, default=1234)
    a = ap.parse_args(argv)

    for f in ("base", "query", "gt"):
        p = getattr(a, f)
        if not os.path.isfile(p):
            usage_error("--%s: no such file: %s" % (f, p))
    if a.centroids and not os.path.isfile(a.centroids):
        usage_error("--centroids: no such file: %s" % a.centroids)
    if not a.gt.endswith(".ivecs"):
        usage_error("--gt must be an .ivecs file")
    for f in ("base", "query"):
        if not getattr(a, f).endswith((".fvecs", ".bvecs")):
            usage_error("--%s must be .fvecs or .bvecs" % f)
    if a.k <= 0:
        usage_error("--k must be positive")
    if a.clusters <= 0:
        usage_error("--clusters must be positive")
    if a.runs <= 0 or a.warmup < 0:
        usage_error("--runs must be >= 1 and --warmup >= 0")
    if a.threads <= 0:
        usage_error("--threads must be >= 1")
    if a.nq is not None and a.nq <= 0:
        usage_error("--nq must be positive")
    if a.nbase is not None and a.nbase <= 0:
        usage_error("--nbase must be positive")
    if not 1 <= a.qb <= 8:
        usage_error("--qb must be in 1..8")
    a.kfactor_by_method = parse_kfactor(a.kfactor)
    a.method_list = [m.strip() for m in a.methods.split(",") if m.strip()]
    bad = [m for m in a.method_list if not known_method(m)]
    if bad or not a.method_list:
        usage_error("unknown method(s) %s; known: %s, ivfrabitqnr<1..9>" % (",".join(bad), ",".join(METHODS)))
    a.mode_list = [m.strip() for m in a.mode.split(",") if m.strip()]
    if not a.mode_list or any(m not in ("single", "batch") for m in a.mode_list):
        usage_error("--mode wants single and/or batch, got %r" % a.mode)
    a.nprobe_list = int_list(a.nprobe, "nprobe")
    a.ef_list = int_list(a.efsearch, "efsearch")
    return a


# ---------------------------------------------------------------- measuring
def recall_at(ids, gt, k):
    """mean over queries of |top-k result ∩ top-k truth| / k"""
    hits = 0
    for r in range(len(ids)):
        hits += len(set(ids[r, :k].tolist()) & set(gt[r, :k].tolist()))
    return hits / (k * len(ids))


def time_single(index, queries, k, runs, warmup):
    """One query per search call.  Only the faiss call is timed: the query
    pointers and the output buffers are prepared beforehand and the
    low-level search_c entry point is used, so numpy allocation and argument
    checking of the Python wrapper stay out of the measurement."""
    nq = len(queries)
    D = np.empty((nq, k), np.float32)
    I = np.empty((nq, k), np.int64)
    qp = [faiss.swig_ptr(queries[i]) for i in range(nq)]
    dp = [faiss.swig_ptr(D[i]) for i in range(nq)]
    ip = [faiss.swig_ptr(I[i]) for i in range(nq)]
    search = index.search_c
    clock = time.perf_counter_ns
    lat = np.empty(nq, np.int64)
    per_run = []
    for run in range(warmup + runs):
        for i in range(nq):
            t0 = clock()
            search(1, qp[i], k, dp[i], ip[i])
            lat[i] = clock() - t0
        if run >= warmup:
            us = lat / 1e3
            per_run.append((nq / (lat.sum() / 1e9), float(us.mean()), float(np.percentile(us, 99))))
    return I, per_run


def time_batch(index, queries, k, runs, warmup):
    nq = len(queries)
    D = np.empty((nq, k), np.float32)
    I = np.empty((nq, k), np.int64)
    per_run = []
    for run in range(warmup + runs):
        t0 = time.perf_counter_ns()
        index.search_c(nq, faiss.swig_ptr(queries), k, faiss.swig_ptr(D), faiss.swig_ptr(I))
        el = time.perf_counter_ns() - t0
        if run >= warmup:
            per_run.append((nq / (el / 1e9), None, None))
    return I, per_run


def serialized_bytes(index):
    return int(faiss.serialize_index(index).size)


# ---------------------------------------------------------------- building
class Built:
    """A built index plus how to set its sweep parameter."""

    def __init__(self, index, set_param, param, info):
        self.index = index
        self.set_param = set_param
        self.param = param
        self.info = info
        self.keep = []  # python references that faiss objects point to


def metric_of(a):
    """faiss metric of the fine search; cosine runs as inner product on normalized rows.
    The coarse quantizer stays L2 (the assignment of rabitq's own IVF, whose
    centroids it may share)."""
    return faiss.METRIC_L2 if a.metric == "l2" else faiss.METRIC_INNER_PRODUCT


def make_coarse(a, xb, d, centroids):
    """One flat L2 coarse quantizer shared by every IVF method."""
    t0 = time.perf_counter()
    if centroids is not None:
        cent = centroids
        how = "given centroids (%s)" % a.centroids
    else:
        C = a.clusters
        if len(xb) < C:
            raise ValueError("cannot train %d clusters on %d vectors" % (C, len(xb)))
        ntr = min(len(xb), C * a.kmeans_max_per_centroid)
        rs = np.random.RandomState(a.seed)
        sample = xb[np.sort(rs.choice(len(xb), ntr, replace=False))] if ntr < len(xb) else xb
        km = faiss.Kmeans(d, C, niter=a.kmeans_niter, seed=a.seed, verbose=False,
                          max_points_per_centroid=a.kmeans_max_per_centroid)
        km.train(np.ascontiguousarray(sample))
        cent = km.centroids
        how = "faiss k-means (niter %d, %d training points, seed %d)" % (a.kmeans_niter, ntr, a.seed)
    q = faiss.IndexFlatL2(d)
    q.add(np.ascontiguousarray(cent, dtype=np.float32))
    q.is_trained = True
    sec = time.perf_counter() - t0
    log("coarse quantizer: %s, %.2fs" % (how, sec))
    return q, how, sec


def build_method(name, a, xb, d, coarse, train_sample):
    C = a.clusters
    t0 = time.perf_counter()
    if name == "hnsw":
        index = faiss.IndexHNSWFlat(d, a.hnsw_m, metric_of(a))
        index.hnsw.efConstruction = a.ef_construction
        info = {"factory": "HNSW%d,Flat" % a.hnsw_m, "efConstruction": a.ef_construction,
                "M": a.hnsw_m}
        t1 = time.perf_counter()
        index.add(xb)
        t2 = time.perf_counter()
        hnsw = index.hnsw

        def set_ef(v):
            hnsw.efSearch = v
        b = Built(index, set_ef, "efSearch", info)
        b.refine = None
        b.trainSeconds, b.addSeconds = t1 - t0, t2 - t1
        b.base_bytes = None
        return b

    if name == "ivfflat":
        ivf = faiss.IndexIVFFlat(coarse, d, C, metric_of(a))
        info = {"factory": "IVF%d,Flat" % C}
        refine = False
    elif name == "ivfpq":
        if d % 2:
            raise ValueError("PQ{D/2}x4fs needs an even dimension (d=%d)" % d)
        M = d // 2
        ivf = faiss.IndexIVFPQFastScan(coarse, d, C, M, 4, metric_of(a), 32)
        info = {"factory": "IVF%d,PQ%dx4fs,RFlat" % (C, M)}
        refine = True
    elif name in ("ivfrabitq", "ivfrabitq4") or NO_REFINE_RABITQ.match(name):
        if not hasattr(faiss, "IndexIVFRaBitQFastScan"):
            raise RuntimeError("faiss %s has no IndexIVFRaBitQFastScan" % faiss.__version__)
        no_refine = NO_REFINE_RABITQ.match(name)
        nb = int(no_refine.group(1)) if no_refine else 1 if name == "ivfrabitq" else a.rabitq_multibits
        try:
            ivf = faiss.IndexIVFRaBitQFastScan(coarse, d, C, metric_of(a), 32, True, nb)
        except TypeError:
            if nb != 1:
                raise RuntimeError("faiss %s: IndexIVFRaBitQFastScan has no nb_bits argument "
                                   "(multi-bit RaBitQ FastScan unsupported)" % faiss.__version__)
            ivf = faiss.IndexIVFRaBitQFastScan(coarse, d, C, metric_of(a), 32)
        if ivf.rabitq.nb_bits != nb:
            raise RuntimeError("asked for %d-bit RaBitQ, index has nb_bits=%d" % (nb, ivf.rabitq.nb_bits))
        # Without a refine stage the query quantization caps recall, so the
        # no-refine peer gets 8-bit queries (Faiss' most accurate setting).
        ivf.qb = 8 if no_refine else a.qb
        info = {"factory": "IVF%d,RaBitQfs%s%s" % (C, "" if nb == 1 else str(nb), "" if no_refine else ",RFlat"),
                "nbits": nb, "qb": ivf.qb}
        refine = not no_refine
    else:
        raise ValueError(name)

    # the coarse quantizer is already trained with C centroids: IndexIVF.train
    # then only trains the fine encoder (no new k-means)
    assert coarse.is_trained and coarse.ntotal == C
    ivf.own_fields = False
    ivf.train(train_sample)
    if coarse.ntotal != C:
        raise RuntimeError("IVF training changed the shared coarse quantizer")
    if refine:
        index = faiss.IndexRefineFlat(ivf)
        index.k_factor = a.kfactor_by_method[name][0]
    else:
        index = ivf
    t1 = time.perf_counter()
    index.add(xb)
    t2 = time.perf_counter()

    def set_nprobe(v):
        ivf.nprobe = v
    b = Built(index, set_nprobe, "nprobe", info)
    b.refine = index if refine else None
    b.keep.append(ivf)
    b.trainSeconds, b.addSeconds = t1 - t0, t2 - t1
    b.base_bytes = serialized_bytes(ivf) if refine else None
    return b


# ---------------------------------------------------------------- main
def main(argv):
    a = parse_args(argv)
    faiss.omp_set_num_threads(a.threads)

    try:
        nfull, d = count_rows(a.base)
        nqfull, dq = count_rows(a.query)
        ngt, kgt = count_rows(a.gt)
    except (ValueError, OSError) as e:
        usage_error(str(e))
    if d != dq:
        usage_error("base has dimension %d, query %d" % (d, dq))
    N = nfull if a.nbase is None else min(a.nbase, nfull)
    nq = nqfull if a.nq is None else min(a.nq, nqfull)
    if a.nbase is not None and a.nbase > nfull:
        log("--nbase %d > %d base rows: using all %d" % (a.nbase, nfull, nfull))
    if N < a.clusters:
        usage_error("%d base vectors are fewer than --clusters %d" % (N, a.clusters))
    centroids = None
    if a.centroids:
        try:
            centroids = read_fvecs(a.centroids)
        except (ValueError, OSError) as e:
            usage_error(str(e))
        if centroids.shape != (a.clusters, d):
            usage_error("--centroids has shape %s, expected (%d, %d)"
                        % (centroids.shape, a.clusters, d))

    t0 = time.perf_counter()
    xb = np.ascontiguousarray(read_vectors(a.base, N))
    xq = np.ascontiguousarray(read_vectors(a.query, nq))
    if a.metric == "cosine":
        # cosine = inner product of unit vectors (zero rows stay zero)
        faiss.normalize_L2(xb)
        faiss.normalize_L2(xq)
    log("base %s x %d (%s), queries %d, %.1fs to load" % (N, d, a.base, nq, time.perf_counter() - t0))

    ks = max(10, a.k)  # k used in every search
    gt_source = a.gt
    if N < nfull:
        kg = max(ks, 100)
        log("--nbase %d < %d base rows: %s no longer matches; computing exact top-%d "
            "ground truth with IndexFlatL2 on the prefix" % (N, nfull, a.gt, kg))
        t0 = time.perf_counter()
        flat = faiss.IndexFlatL2(d) if a.metric == "l2" else faiss.IndexFlatIP(d)
        flat.add(xb)
        _, gt = flat.search(xq, min(kg, N))
        del flat
        gt = gt.astype(np.int32)
        gt_source = "computed (IndexFlatL2 on the first %d base rows)" % N
        log("exact ground truth in %.1fs" % (time.perf_counter() - t0))
    else:
        gt = read_ivecs(a.gt)
        if len(gt) < nq:
            usage_error("ground truth has %d rows, fewer than %d queries" % (len(gt), nq))
        gt = gt[:nq]
        if gt.max() >= N or gt.min() < 0:
            usage_error("ground truth ids out of range for %d base vectors" % N)
    report_ks = [1, 10] + ([100] if ks >= 100 and gt.shape[1] >= 100 else [])
    if gt.shape[1] < 10:
        usage_error("ground truth has only %d columns (need >= 10)" % gt.shape[1])

    nprobe_list = sorted(set(v for v in a.nprobe_list if v <= a.clusters))
    dropped = sorted(set(v for v in a.nprobe_list if v > a.clusters))
    if dropped:
        log("nprobe values above C=%d dropped: %s" % (a.clusters, dropped))
    if not nprobe_list:
        nprobe_list = [a.clusters]
        log("no --nprobe value <= C: using nprobe=%d" % a.clusters)

    results = []
    out = {
        "peer": "faiss",
        "version": faiss.__version__,
        "compile_options": faiss.get_compile_options(),
        "simd_level": None,
        "threads": a.threads,
        "metric": a.metric,
        "dataset": {"base": a.base, "query": a.query, "n": N, "dim": d, "nq": nq,
                    "gt": gt_source, "k": ks},
        "coarse": None,
        "notes": ("qps = queries / summed faiss search time, median of %d timed runs after %d "
                  "warm-up runs; single mode: one query per search_c call, latency = median over "
                  "runs of the per-run mean / p99; batch mode: one call with all queries. "
                  "bytesPerVector = len(faiss.serialize_index(index)) / N (whole index incl. "
                  "coarse centroids and, for refined methods, the float32 refine store); "
                  "bytesPerVectorBase = the same without the refine stage." % (a.runs, a.warmup)),
        "results": results,
    }
    try:
        out["simd_level"] = faiss.SIMDConfig.get_level_name()
    except Exception:  # older faiss without dynamic dispatch
        pass

    ivf_methods = [m for m in a.method_list if m != "hnsw"]
    coarse = None
    coarse_error = None
    train_sample = None
    if ivf_methods:
        try:
            coarse, how, csec = make_coarse(a, xb, d, centroids)
            out["coarse"] = {"clusters": a.clusters, "source": how, "seconds": round(csec, 3)}
        except Exception as e:  # noqa: BLE001
            coarse_error = "coarse quantizer: %s" % e
            log(coarse_error)
        ntr = min(N, a.ntrain)
        if ntr < N:
            rs = np.random.RandomState(a.seed + 1)
            train_sample = np.ascontiguousarray(xb[np.sort(rs.choice(N, ntr, replace=False))])
        else:
            train_sample = xb

    for name in a.method_list:
        sweep = a.ef_list if name == "hnsw" else nprobe_list
        pname = "efSearch" if name == "hnsw" else "nprobe"
        kfs = a.kfactor_by_method.get(name, [None])
        # one curve (method id) per k_factor value when several are swept
        variants = [("faiss-" + name if len(kfs) == 1 else "faiss-%s-kf%g" % (name, kf), kf)
                    for kf in kfs]

        def entry(method, kf, mode, value, **kw):
            e = {"method": method, "mode": mode, "param": pname, "value": value,
                 "recall1": None, "recall10": None, "recall100": None, "qps": None,
                 "qpsRuns": None, "meanLatencyUs": None, "p99LatencyUs": None,
                 "buildSeconds": None, "trainSeconds": None, "addSeconds": None,
                 "bytesPerVector": None, "bytesPerVectorBase": None, "k": ks,
                 "kFactor": kf, "error": None}
            e.update(kw)
            return e

        log("building faiss-%s ..." % name)
        built = None
        try:
            if name != "hnsw" and coarse is None:
                raise RuntimeError(coarse_error or "no coarse quantizer")
            built = build_method(name, a, xb, d, coarse, train_sample)
            total_bytes = serialized_bytes(built.index)
        except Exception as e:  # noqa: BLE001
            text = str(e).strip()
            msg = "%s: %s" % (type(e).__name__, text.splitlines()[-1] if text else "")
            log("faiss-%s failed to build: %s" % (name, msg))
            for method, kf in variants:
                for mode in a.mode_list:
                    for v in sweep:
                        results.append(entry(method, kf, mode, v, error="build failed: " + msg))
            continue
        common = dict(built.info)
        common.update({
            "buildSeconds": round(built.trainSeconds + built.addSeconds, 4),
            "trainSeconds": round(built.trainSeconds, 4),
            "addSeconds": round(built.addSeconds, 4),
            "bytesPerVector": round(total_bytes / N, 3),
            "bytesPerVectorBase": None if built.base_bytes is None else round(built.base_bytes / N, 3),
        })
        log("faiss-%s built: train %.2fs add %.2fs, %.1f bytes/vector%s" % (
            name, built.trainSeconds, built.addSeconds, total_bytes / N,
            "" if built.base_bytes is None else " (%.1f without refine)" % (built.base_bytes / N)))

        for method, kf in variants:
            if built.refine is not None:
                built.refine.k_factor = kf
            for mode in a.mode_list:
                for v in sweep:
                    try:
                        built.set_param(v)
                        runner = time_single if mode == "single" else time_batch
                        I, per_run = runner(built.index, xq, ks, a.runs, a.warmup)
                        rec = {kk: recall_at(I, gt, kk) for kk in report_ks}
                        qps_runs = [r[0] for r in per_run]
                        e = entry(method, kf, mode, v,
                                  recall1=round(rec[1], 5), recall10=round(rec[10], 5),
                                  recall100=round(rec[100], 5) if 100 in rec else None,
                                  qps=round(float(np.median(qps_runs)), 2),
                                  qpsRuns=[round(q, 2) for q in qps_runs])
                        if mode == "single":
                            e["meanLatencyUs"] = round(float(np.median([r[1] for r in per_run])), 2)
                            e["p99LatencyUs"] = round(float(np.median([r[2] for r in per_run])), 2)
                        e.update(common)
                        log("%s %s %s=%d  R@1 %.4f R@10 %.4f%s  %.0f QPS" % (
                            method, mode, pname, v, rec[1], rec[10],
                            " R@100 %.4f" % rec[100] if 100 in rec else "", e["qps"]))
                    except Exception as ex:  # noqa: BLE001
                        e = entry(method, kf, mode, v)
                        e.update(common)
                        e["error"] = "%s: %s" % (type(ex).__name__, ex)
                        log("%s %s %s=%d failed: %s" % (method, mode, pname, v, ex))
                    results.append(e)
        del built

    json.dump(out, sys.stdout, indent=1)
    sys.stdout.write("\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
