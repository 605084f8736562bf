"""Benchmark of the ``Session`` RPC (endless motion steered mid-stream), guided and unguided.

Starts its own ``coamd serve`` on loopback (:class:`coamd.client.process.ServerProcess`) and
measures, for each guidance mode:

1. **instruction latency**: ``--latency-sessions`` sessions open (default 8), each sending a new
   instruction every 2-3 s (``--instruct-every``) cycling through varied texts, for
   ``--latency-s`` seconds. Client side: instruction sent -> the message carrying its
   ``INSTRUCTION`` event (the first frame reflecting it) received; server side: the event's
   ``latency_ms``. Also the time until that frame *plays* (the client's playhead, below).
2. **seam quality**, on the frames of those sessions: jitter and foot skating
   (:mod:`coamd.evaluation.metrics`) in the 1 s around each switch (10 frames either side of the
   event's first frame) against 1 s windows inside segments (every 20-frame window that does
   not touch a switch's 1 s), as ratios (target <= 1.5); the largest frame-to-frame joint step
   against the largest in the real test clips (``data/processed``,
   :class:`coamd.data.dataset.MotionDataset`); and the action recognised
   (:meth:`Engine.recognize`, in-process, :func:`coamd.runtime.load_engine`) on the 2 s after each
   switch against the text's understood action, compared with fresh ``Generate`` calls of the
   same texts on the same server (their first 2 s; the whole clip also reported), with 95 %
   intervals (:mod:`benchmarks.stats`). Target: within 5 points. A 60 s run gives about 190
   switches, an interval of about +-9 points on the gap; ``benchmarks/session_switches.py``
   measures the same session code in-process on ten times as many.
3. **real-time capacity**: sessions at 20 fps with no underrun. Each client runs a playhead that
   starts when the session's first frame arrives; frame ``i`` plays at ``t0 + i / 20``; an
   underrun is a frame that arrives after its play time. Ramp ``--ramp`` (8 16 32 48 64)
   sessions, each level for ``--ramp-s`` seconds (opens spread over ``--stagger-s``, instructions
   every 2-3 s as above); a mode's ramp stops at the first level with underruns. Reported: the
   largest level without any underrun (target unguided >= 32).
4. **long session**: one session with a 1 s lookahead for ``--long-minutes`` (the issue asks 30;
   default 5), instructions every 2-3 s; server RSS (``/proc/PID/status`` VmRSS) sampled every
   10 s: growth (target < 20 MB) and underruns.

The machine is shared: every phase records the load average, the server's CPU use and the CPU
used by everything else on the machine (``/proc/stat`` minus the server and this client).

    .venv/bin/python benchmarks/sessions.py --out benchmarks/results/sessions

Writes OUT.json and OUT.md (and OUT.server.log).
"""
from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import platform
import random
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from coamd.api import pb, pb_grpc
from coamd.client.process import ServerProcess
from benchmarks.hardware import cpu_model
from benchmarks.stats import newcombe, wilson

FPS = 20.0
TEXTS = ["a person walks forward", "a person runs", "a person waves the right hand", "a person kicks",
         "a person bows", "a person punches", "a person raises both hands", "a person walks backwards",
         "a person dances", "a person turns left while walking"]
SEAM_HALF = 10          # frames either side of a switch: the 1 s around it
RECOG_FRAMES = 40       # 2 s after a switch


# ----------------------------------------------------------------------------- machine accounting
def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    raise RuntimeError(f"no VmRSS for pid {pid}")


def _proc_cpu_s(pid: int) -> float:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        f = stat[stat.rindex(")") + 2:].split()
        return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


def _machine_cpu_s() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot (``/proc/stat``)."""
    f = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    tick = os.sysconf("SC_CLK_TCK")
    idle = f[3] + (f[4] if len(f) > 4 else 0)
    return (sum(f[:8]) - idle) / tick, sum(f[:8]) / tick


def _threads_schedstat(pid: int) -> dict[str, tuple[str, int, int]]:
    """Per thread of ``pid``: (name, ns on a CPU, ns runnable but waiting for a CPU) since it started."""
    out = {}
    for d in Path(f"/proc/{pid}/task").glob("*"):
        try:
            run, wait, _ = (d / "schedstat").read_text().split()
            out[d.name] = ((d / "comm").read_text().strip(), int(run), int(wait))
        except (OSError, ValueError):
            pass
    return out


class CpuMeter:
    """CPU use over a phase: server, this client, the rest of the machine (in cores), load average,
    and from the server threads' schedstat how long they were runnable but waited for a CPU
    (``server_runqueue_wait_cores``; the busiest thread's on-CPU and wait separately)."""

    def __init__(self, server_pid: int):
        self.pid = server_pid
        self.sched = _threads_schedstat(server_pid)
        self.t = time.monotonic()
        self.srv = _proc_cpu_s(server_pid)
        self.me = time.process_time()
        self.busy, _ = _machine_cpu_s()
        self.load0 = os.getloadavg()

    def result(self) -> dict:
        dt = max(time.monotonic() - self.t, 1e-6)
        srv = (_proc_cpu_s(self.pid) - self.srv) / dt
        me = (time.process_time() - self.me) / dt
        busy = (_machine_cpu_s()[0] - self.busy) / dt
        rows = []
        for tid, (name, run, wait) in _threads_schedstat(self.pid).items():
            r0, w0 = self.sched.get(tid, (name, 0, 0))[1:]
            rows.append((name, (run - r0) / 1e9 / dt, (wait - w0) / 1e9 / dt))
        rows.sort(key=lambda r: -r[1])
        top = rows[0] if rows else ("-", 0.0, 0.0)
        sched = {"server_runqueue_wait_cores": sum(r[2] for r in rows),
                 "busiest_thread": {"name": top[0], "on_cpu": top[1], "runqueue_wait": top[2]}}
        return {**sched, "seconds": dt, "server_cores": srv, "client_cores": me, "other_cores": max(busy - srv - me, 0.0),
                "loadavg_start": list(self.load0), "loadavg_end": list(os.getloadavg()), "cores": os.cpu_count()}



# ----------------------------------------------------------------------------- one session client
class SessionClient:
    """One session on an asyncio channel: sends instructions every ``every`` (lo, hi) seconds after
    its first frame, runs a playhead, records latencies and (optionally) the frames."""

    def __init__(self, stub, guidance: bool, seed: int, text_offset: int, every: tuple[float, float],
                 lookahead_s: float = 0.0, keep_frames: bool = False, cleanup: bool | None = None):
        self.stub = stub
        self.cleanup = cleanup
        self.guidance = guidance
        self.seed = seed
        self.offset = text_offset
        self.every = every
        self.lookahead_s = lookahead_s
        self.keep = keep_frames
        self.rng = random.Random(seed)
        self.frames: list[np.ndarray] = []
        self.n = 0
        self.t0: float | None = None               # playhead start (first frame's arrival)
        self.t_open = 0.0
        self.sent: dict[int, tuple[float, str]] = {}
        self.switches: list[dict] = []             # INSTRUCTION events (instruction > 0)
        self.underruns = 0
        self.underruns_startup = 0                 # of them, frames of the first window (< 40)
        self.max_late_ms = 0.0
        self.error: str | None = None
        self.closed = False

    def _text(self, i: int) -> str:
        return TEXTS[(self.offset + i) % len(TEXTS)]

    async def run(self, seconds: float, on_frames=None) -> None:
        q: asyncio.Queue = asyncio.Queue()
        open_ = pb.SessionOpen(text=self._text(0), seed=self.seed,
                               guidance=pb.GUIDANCE_ON if self.guidance else pb.GUIDANCE_OFF,
                               lookahead_s=self.lookahead_s,
                               cleanup={None: pb.CLEANUP_UNSPECIFIED, True: pb.CLEANUP_ON, False: pb.CLEANUP_OFF}[self.cleanup])
        q.put_nowait(pb.SessionRequest(open=open_))

        async def requests():
            while True:
                m = await q.get()
                if m is None:
                    return
                yield m
                if m.WhichOneof("kind") == "close":
                    return

        self.t_open = time.perf_counter()
        deadline = self.t_open + seconds
        first = asyncio.Event()

        async def steer():
            await first.wait()
            i = 0
            while np.isfinite(self.every[0]):
                wait = self.rng.uniform(*self.every)
                if time.perf_counter() + wait >= deadline:
                    await asyncio.sleep(max(deadline - time.perf_counter(), 0))
                    break
                await asyncio.sleep(wait)
                i += 1
                self.sent[i] = (time.perf_counter(), self._text(i))
                q.put_nowait(pb.SessionRequest(instruction=pb.SessionInstruction(text=self._text(i))))
            else:
                await asyncio.sleep(max(deadline - time.perf_counter(), 0))
            q.put_nowait(pb.SessionRequest(close=pb.SessionClose()))

        steerer = asyncio.ensure_future(steer())
        call = self.stub.Session(requests(), timeout=seconds + 120)
        try:
            async for resp in call:
                t = time.perf_counter()
                k = len(resp.frames)
                if k:
                    if self.t0 is None:
                        self.t0 = t
                        first.set()
                    if t <= deadline:            # frames after the session's time are not judged
                        idx = np.arange(self.n, self.n + k)
                        late = t - (self.t0 + idx / FPS)
                        bad = late > 0
                        self.underruns += int(bad.sum())
                        self.underruns_startup += int((bad & (idx < 40)).sum())
                        self.max_late_ms = max(self.max_late_ms, 1000 * float(late.max()))
                    if self.keep:
                        self.frames.append(np.asarray([f.positions for f in resp.frames], np.float32)
                                           .reshape(k, 21, 3))
                    self.n += k
                for e in resp.events:
                    if e.kind == pb.SessionEvent.INSTRUCTION and e.instruction > 0 and e.instruction in self.sent:
                        ts, text = self.sent[e.instruction]
                        play = self.t0 + e.first_frame / FPS
                        self.switches.append({"instruction": e.instruction, "text": text, "first_frame": e.first_frame,
                                              "client_ms": 1000 * (t - ts), "server_ms": float(e.latency_ms),
                                              "play_ms": 1000 * (play - ts)})
                    elif e.kind == pb.SessionEvent.CLOSED:
                        self.closed = True
                if on_frames is not None and k:
                    on_frames(k)
        except Exception as exc:
            details = exc.details() if hasattr(exc, "details") else str(exc)
            self.error = f"{type(exc).__name__}: {details}"
        finally:
            steerer.cancel()
            q.put_nowait(None)

    def joints(self) -> np.ndarray:
        return np.concatenate(self.frames) if self.frames else np.zeros((0, 21, 3), np.float32)


async def run_sessions(target: str, n: int, seconds: float, guidance: bool, every, stagger_s: float,
                       seed: int, keep_frames: bool = False, lookahead_s: float = 0.0, bar=None,
                       probe=None, cleanup: bool | None = None) -> list[SessionClient]:
    """``n`` concurrent sessions for ``seconds`` each, opens spread over ``stagger_s``; channels
    are shared by 8 sessions each (HTTP/2 streams)."""
    import grpc

    channels = [grpc.aio.insecure_channel(target) for _ in range((n + 7) // 8)]
    stubs = [pb_grpc.MotionServiceStub(c) for c in channels]
    clients = [SessionClient(stubs[i // 8], guidance, seed + i, i, every, lookahead_s, keep_frames, cleanup)
               for i in range(n)]

    async def one(i, c):
        await asyncio.sleep(stagger_s * i / max(n, 1))
        await c.run(seconds, on_frames=(lambda k: bar.update(k)) if bar is not None else None)

    tasks = [asyncio.ensure_future(one(i, c)) for i, c in enumerate(clients)]
    if probe is not None:
        tasks.append(asyncio.ensure_future(probe()))
    try:
        await asyncio.gather(*tasks[:n])
    finally:
        for t in tasks[n:]:
            t.cancel()
        await asyncio.gather(*(c.close() for c in channels))
    return clients


def _pct(xs, q) -> float:
    return float(np.percentile(xs, q)) if len(xs) else float("nan")


def session_summary(clients: list[SessionClient]) -> dict:
    sw = [s for c in clients for s in c.switches]
    cl = [s["client_ms"] for s in sw]
    sv = [s["server_ms"] for s in sw]
    pl = [s["play_ms"] for s in sw]
    return {"sessions": len(clients), "errors": [c.error for c in clients if c.error][:3],
            "n_errors": sum(1 for c in clients if c.error), "frames": sum(c.n for c in clients),
            "underruns": sum(c.underruns for c in clients),
            "underruns_startup": sum(c.underruns_startup for c in clients),
            "sessions_with_underruns": sum(1 for c in clients if c.underruns),
            "max_late_ms": max((c.max_late_ms for c in clients), default=0.0),
            "instructions": len(sw), "client_p50_ms": _pct(cl, 50), "client_p99_ms": _pct(cl, 99),
            "client_max_ms": max(cl, default=float("nan")), "server_p50_ms": _pct(sv, 50),
            "server_p99_ms": _pct(sv, 99), "play_p50_ms": _pct(pl, 50), "play_p99_ms": _pct(pl, 99)}


# ----------------------------------------------------------------------------- seam metrics
def server_session_config(server_args: list[str]):
    """The :class:`coamd.sampling.session.SessionConfig` of a ``coamd serve`` started with
    ``server_args`` (its ``--session-*`` options, read with the CLI's own parser and defaults)."""
    from coamd.cli import build_parser
    from coamd.sampling.session import SessionConfig

    a, _ = build_parser().parse_known_args(["serve", *server_args])
    return SessionConfig.from_seconds(a.session_horizon, a.session_commit, a.session_history, a.session_prefix)


def matched_ratios_cell(s: dict) -> str:
    """'jitter / skate speed / skate ratio' matched ratios of a seam_metrics result, '-' if absent."""
    if "jitter_matched_ratio" not in s:
        return "-"
    return " / ".join(f"{s[f'{m}_matched_ratio']:.2f}" for m in ("jitter", "skate_speed", "skate_ratio"))


def _max_step(j: np.ndarray) -> float:
    return float(np.linalg.norm(np.diff(j, axis=0), axis=-1).max()) if len(j) > 1 else 0.0


def seam_metrics(clients: list[SessionClient], config=None) -> dict:
    """Jitter and foot skating in the 1 s around switches vs 1 s windows inside segments, pooled
    over sessions; the largest frame-to-frame step and where it is. ``config``: the server's
    :class:`coamd.sampling.session.SessionConfig` (None = the defaults), which says where the
    windows start.

    Two comparisons: ``*_ratio`` pools every seam against every inside window; ``*_matched_ratio``
    compares each seam with the inside windows of its own two texts (the half before the switch
    with the old text's, the half after with the new one's; jitter the mean of the two). Actions
    differ a lot (a walk skates on about 7 % of its contact frames, a wave on 0.4 %, and a wave has
    three times a walk's contact frames), so the pooled inside windows stand for the stationary
    actions while most seams here involve walking: the matched ratio measures the switch itself."""
    from coamd.sampling.session import SessionConfig

    config = config or SessionConfig()
    from coamd.evaluation.metrics import foot_skating, jitter

    acc = {"seam": {"jitter": [], "skate_sum": 0.0, "contacts": 0, "ratio_sum": 0.0},
           "inside": {"jitter": [], "skate_sum": 0.0, "contacts": 0, "ratio_sum": 0.0}}
    from coamd.skeleton import JOINT_NAMES

    biggest, biggest_at_seam, biggest_inside = 0.0, 0.0, 0.0
    top: list[dict] = []
    win_max = [0.0, 0.0]          # largest step onto a window's first frame, elsewhere

    def add(kind, w):
        """Adds window w to the pooled sums; returns its jitter, skate speed sum, skate count and
        contact pairs."""
        a = acc[kind]
        a["jitter"].append(jitter(w))
        fs = foot_skating(w)
        n = fs["contact_frac"] * 2 * (len(w) - 1)
        a["skate_sum"] += fs["skate_speed"] * n
        a["ratio_sum"] += fs["skate_ratio"] * n
        a["contacts"] += n
        return a["jitter"][-1], fs["skate_speed"] * n, fs["skate_ratio"] * n, n

    def contacts(w):  # contact toe-frame pairs of a stretch of frames
        return foot_skating(w)["contact_frac"] * 2 * (len(w) - 1) if len(w) > 1 else 0.0

    by_text: dict[str, dict] = {}   # inside windows per text: jitter list, skate sums, contacts
    seams: list[dict] = []          # per seam: its texts, measured values, contacts per half

    for c in clients:
        j = c.joints()
        if len(j) < 2 * SEAM_HALF:
            continue
        events = sorted(c.switches, key=lambda e: e["first_frame"])
        switches = [e["first_frame"] for e in events]
        texts = [c._text(0)] + [e["text"] for e in events]     # texts[k]: segment k's
        near = np.zeros(len(j), bool)
        for k, f in enumerate(switches):
            if f - SEAM_HALF >= 0 and f + SEAM_HALF <= len(j):
                w = j[f - SEAM_HALF:f + SEAM_HALF]
                jt, sp, ra, _ = add("seam", w)
                seams.append({"texts": (texts[k], texts[k + 1]), "jitter": jt, "speed": sp, "ratio": ra,
                              "halves": (contacts(j[f - SEAM_HALF:f + 1]), contacts(j[f:f + SEAM_HALF]))})
            near[max(f - SEAM_HALF, 0):f + SEAM_HALF] = True
        for s in range(0, len(j) - 2 * SEAM_HALF + 1, 2 * SEAM_HALF):
            if not near[s:s + 2 * SEAM_HALF].any():
                w = j[s:s + 2 * SEAM_HALF]
                jt, sp, ra, n = add("inside", w)
                t = by_text.setdefault(texts[int(np.searchsorted(switches, s, side="right"))],
                                       {"jitter": [], "speed": 0.0, "ratio": 0.0, "contacts": 0.0})
                t["jitter"].append(jt)
                t["speed"] += sp
                t["ratio"] += ra
                t["contacts"] += n
        steps_j = np.linalg.norm(np.diff(j, axis=0), axis=-1)             # (T-1, 21)
        steps = steps_j.max(-1)                                            # per frame pair
        biggest = max(biggest, float(steps.max()))
        # window starts: the first window commits first_frames, later ones commit frames each,
        # and a switch starts a new window at its first frame
        starts, cuts = set(), [*switches, len(j)]
        pos = config.first_frames
        for cut in cuts:
            while pos < cut:
                starts.add(pos)
                pos += config.commit
            starts.add(cut)
            pos = cut + config.commit
        at_start = np.zeros(len(steps), bool)
        for b in starts:
            if 0 < b <= len(steps):
                at_start[b - 1] = True                                     # pair (b-1, b)
        for k in np.argsort(steps)[-5:]:
            top.append({"session": c.seed, "to_frame": int(k + 1), "step_m": float(steps[k]),
                        "joint": JOINT_NAMES[int(steps_j[k].argmax())], "window_start": bool(at_start[k]),
                        "near_switch": bool(near[k] or near[k + 1])})
        win_max[0] = max(win_max[0], float(steps[at_start].max()) if at_start.any() else 0.0)
        win_max[1] = max(win_max[1], float(steps[~at_start].max()) if (~at_start).any() else 0.0)
        seam_pairs = near[1:] | near[:-1]
        if seam_pairs.any():
            biggest_at_seam = max(biggest_at_seam, float(steps[seam_pairs].max()))
        if (~seam_pairs).any():
            biggest_inside = max(biggest_inside, float(steps[~seam_pairs].max()))
    out = {}
    for k, a in acc.items():
        out[k] = {"windows": len(a["jitter"]), "jitter": float(np.mean(a["jitter"])) if a["jitter"] else float("nan"),
                  "skate_speed": a["skate_sum"] / a["contacts"] if a["contacts"] else 0.0,
                  "skate_ratio": a["ratio_sum"] / a["contacts"] if a["contacts"] else 0.0,
                  "contact_pairs": int(round(a["contacts"]))}
    for m in ("jitter", "skate_speed", "skate_ratio"):
        d = out["inside"][m]
        out[f"{m}_ratio"] = out["seam"][m] / d if d else float("nan")
    # the same seams against the inside windows of their own two texts
    inside = {t: {"jitter": float(np.mean(v["jitter"])),
                  "skate_speed": v["speed"] / v["contacts"] if v["contacts"] else 0.0,
                  "skate_ratio": v["ratio"] / v["contacts"] if v["contacts"] else 0.0,
                  "windows": len(v["jitter"]), "contact_pairs": int(round(v["contacts"]))} for t, v in by_text.items()}
    got = {"jitter": 0.0, "skate_speed": 0.0, "skate_ratio": 0.0}
    want = dict(got)
    used = 0
    for x in seams:
        a, b = x["texts"]
        if a not in inside or b not in inside:
            continue
        used += 1
        got["jitter"] += x["jitter"]
        want["jitter"] += 0.5 * (inside[a]["jitter"] + inside[b]["jitter"])
        for m, measured in (("skate_speed", x["speed"]), ("skate_ratio", x["ratio"])):
            got[m] += measured
            want[m] += x["halves"][0] * inside[a][m] + x["halves"][1] * inside[b][m]
    for m in got:
        out[f"{m}_matched_ratio"] = got[m] / want[m] if want[m] else float("nan")
    out["matched_seams"] = used
    out["inside_by_text"] = inside
    out["max_step_m"] = biggest
    out["max_step_at_seam_m"] = biggest_at_seam
    out["max_step_inside_m"] = biggest_inside
    out["max_step_onto_window_start_m"] = win_max[0]
    out["max_step_within_windows_m"] = win_max[1]
    out["largest_steps"] = sorted(top, key=lambda x: -x["step_m"])[:10]
    return out


# ----------------------------------------------------------------------------- recognition
async def fresh_generates(target: str, guidance: bool, seeds: int, duration_s: float) -> dict[str, list[np.ndarray]]:
    from coamd.client import AsyncMotionClient

    c = AsyncMotionClient(target)
    out: dict[str, list[np.ndarray]] = {t: [] for t in TEXTS}
    try:
        for s in range(seeds):
            rs = await asyncio.gather(*(c.generate(t, duration_s=duration_s, seed=1000 + s, guidance=guidance,
                                                   timeout=300) for t in TEXTS))
            for t, r in zip(TEXTS, rs):
                out[t].append(r.joints)
    finally:
        await c.close()
    return out


async def steady_sessions(target: str, guidance: bool, seeds: int, seconds: float) -> list[SessionClient]:
    """One session per text and seed that keeps its first text for ``seconds`` (no switch)."""
    import grpc

    out = []
    async with grpc.aio.insecure_channel(target) as ch:
        stub = pb_grpc.MotionServiceStub(ch)
        for s in range(seeds):
            cs = [SessionClient(stub, guidance, 2000 + s * 50 + i, i, (float("inf"), float("inf")), keep_frames=True)
                  for i in range(len(TEXTS))]
            await asyncio.gather(*(c.run(seconds) for c in cs))
            out += cs
    return out


def recognition(engine, clients: list[SessionClient], fresh: dict[str, list[np.ndarray]],
                steady: list[SessionClient] = ()) -> dict:
    """Top-1 recognised content vs the text's understood content: the 2 s after each switch, and
    the fresh Generate clips (first 2 s; whole clip); 95 % intervals of both (Wilson) and of
    their gap (Newcombe's hybrid score interval, :mod:`benchmarks.stats`)."""
    expected = {t: engine.understand(t, "understood")[0].content for t in TEXTS}

    def top1(j):
        return engine.recognize(np.ascontiguousarray(j, np.float32), top_k=1)["content"][0].label

    per_text = {t: {"expected": expected[t], "after_switch": [], "fresh_2s": [], "fresh_full": []} for t in TEXTS}
    as_previous = []
    for c in clients:
        j = c.joints()
        sw = sorted(c.switches, key=lambda s: s["first_frame"])
        for k, s in enumerate(sw):
            f = s["first_frame"]
            end = min(f + RECOG_FRAMES, sw[k + 1]["first_frame"] if k + 1 < len(sw) else len(j), len(j))
            if end - f < RECOG_FRAMES // 2:
                continue
            got = top1(j[f:end])
            per_text[s["text"]]["after_switch"].append(got == expected[s["text"]])
            per_text[s["text"]].setdefault("after_switch_labels", []).append(got)
            prev = sw[k - 1]["text"] if k else c._text(0)
            if expected[prev] != expected[s["text"]]:
                as_previous.append(got == expected[prev])
    # sessions that keep one text: the first window (a 2 s generation from rest) and continuation
    # windows without any switch, 2 s each
    steady_acc: dict[str, list[bool]] = {}
    for c in steady:
        j = c.joints()
        t = c._text(0)
        for k in range(len(j) // RECOG_FRAMES):
            key = "first_2s" if k == 0 else f"continued_{2 * k}-{2 * k + 2}s"
            steady_acc.setdefault(key, []).append(top1(j[k * RECOG_FRAMES:(k + 1) * RECOG_FRAMES]) == expected[t])
    for t, clips in fresh.items():
        for m in clips:
            per_text[t]["fresh_2s"].append(top1(m[:RECOG_FRAMES]) == expected[t])
            per_text[t]["fresh_full"].append(top1(m) == expected[t])
    def acc(key):
        xs = [x for v in per_text.values() for x in v[key]]
        return float(100 * np.mean(xs)) if xs else float("nan")

    n = lambda key: sum(len(v[key]) for v in per_text.values())
    res = {"after_switch_pct": acc("after_switch"), "after_switch_n": n("after_switch"),
           "fresh_2s_pct": acc("fresh_2s"), "fresh_full_pct": acc("fresh_full"), "fresh_n": n("fresh_2s"),
           "per_text": {t: {"expected": v["expected"],
                            "after_switch_pct": float(100 * np.mean(v["after_switch"])) if v["after_switch"] else None,
                            "after_switch_n": len(v["after_switch"]),
                            "fresh_2s_pct": float(100 * np.mean(v["fresh_2s"])) if v["fresh_2s"] else None,
                            "fresh_full_pct": float(100 * np.mean(v["fresh_full"])) if v["fresh_full"] else None,
                            "after_switch_recognised_as": dict(collections.Counter(v.get("after_switch_labels", []))
                                                               .most_common(4))}
                        for t, v in per_text.items()}}
    res["gap_points"] = res["fresh_2s_pct"] - res["after_switch_pct"]
    k_sw = sum(sum(v["after_switch"]) for v in per_text.values())
    k_fr = sum(sum(v["fresh_2s"]) for v in per_text.values())
    res["after_switch_ci95"] = wilson(k_sw, res["after_switch_n"])
    res["fresh_2s_ci95"] = wilson(k_fr, res["fresh_n"])
    res["gap_ci95"] = newcombe(k_fr, res["fresh_n"], k_sw, res["after_switch_n"])
    res["after_switch_as_previous_pct"] = float(100 * np.mean(as_previous)) if as_previous else None
    res["steady"] = {k: {"pct": float(100 * np.mean(v)), "n": len(v)} for k, v in steady_acc.items()}
    return res


def real_max_step(dataset_root: str) -> dict:
    from coamd.data.dataset import MotionDataset

    ds = MotionDataset(dataset_root)
    steps = [_max_step(c.joints) for c in ds.split("test")]
    return {"clips": len(steps), "max_step_m": float(max(steps)), "p99_clip_max_step_m": _pct(steps, 99)}


# ----------------------------------------------------------------------------- main
def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--modes", nargs="+", choices=("unguided", "guided"), default=["unguided", "guided"])
    p.add_argument("--latency-sessions", type=int, default=8, help="sessions open in phase 1 (default %(default)s)")
    p.add_argument("--latency-s", type=float, default=45.0, help="length of phase 1 per mode (default %(default)s)")
    p.add_argument("--instruct-every", type=float, nargs=2, default=[2.0, 3.0], metavar=("LO", "HI"),
                   help="seconds between instructions, uniform (default 2 3)")
    p.add_argument("--fresh-seeds", type=int, default=3, help="fresh Generate clips per text (default %(default)s)")
    p.add_argument("--steady-s", type=float, default=8.0,
                   help="length of the no-switch sessions (one per text and fresh seed; default %(default)s)")
    p.add_argument("--fresh-duration", type=float, default=4.0, help="fresh Generate length, s (default %(default)s)")
    p.add_argument("--ramp", type=int, nargs="+", default=[8, 16, 32, 48, 64], help="session counts (default 8 16 32 48 64)")
    p.add_argument("--ramp-s", type=float, default=60.0, help="seconds per ramp level (default %(default)s)")
    p.add_argument("--stagger-s", type=float, default=4.0, help="opens spread over this many seconds (default %(default)s)")
    p.add_argument("--ramp-continue", action="store_true", help="keep ramping after a level with underruns")
    p.add_argument("--long-minutes", type=float, default=5.0, help="length of the long session (default %(default)s; the issue asks 30)")
    p.add_argument("--long-mode", choices=("unguided", "guided"), default="guided",
                   help="guidance of the long session (default %(default)s, the server default)")
    p.add_argument("--cleanup", choices=("default", "on", "off"), default="default",
                   help="foot-contact cleanup of the phase-1 sessions (default: the server's, on)")
    p.add_argument("--max-batch", type=int, default=0, help="the server's --max-batch (default: the server's, 8)")
    p.add_argument("--max-sessions", type=int, default=128, help="the server's --max-sessions (default %(default)s)")
    p.add_argument("--server-arg", dest="server_args", action="append", default=[], metavar="ARG",
                   help="extra argument for `coamd serve` (repeatable), e.g. --server-arg=--session-history=2")
    p.add_argument("--backend", default="onnxruntime", help="server backend (default %(default)s)")
    p.add_argument("--checkpoint", default=None, help="model folder (default: the shipped weights)")
    p.add_argument("--dataset", default="data/processed", help="processed dataset (test split: real steps)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--skip", nargs="*", default=[], choices=("latency", "ramp", "long", "recognition"),
                   help="phases to leave out")
    p.add_argument("--out", default="benchmarks/results/sessions", help="output prefix for .json and .md")
    p.add_argument("--save-frames", default=None, metavar="NPZ",
                   help="also save the phase-1 sessions' frames and switches (per mode) to this .npz")
    p.add_argument("--markdown-from", default=None, metavar="JSON",
                   help="only rewrite the markdown of an earlier run's JSON (next to it) and exit")
    a = p.parse_args(argv)
    if a.markdown_from:
        src = Path(a.markdown_from)
        src.with_suffix(".md").write_text(markdown(json.loads(src.read_text())))
        return 0
    from tqdm import tqdm

    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    log_path = out.with_suffix(".server.log")
    args = ["--backend", a.backend, "--max-sessions", str(a.max_sessions), "--max-queue", "256"]
    if a.checkpoint:
        args += ["--checkpoint", a.checkpoint]
    if a.max_batch:
        args += ["--max-batch", str(a.max_batch)]
    args += a.server_args
    t_start = time.monotonic()
    every = tuple(a.instruct_every)
    result: dict = {"machine": {"cpu": cpu_model(), "cores": os.cpu_count(), "python": platform.python_version(),
                                "loadavg_at_start": list(os.getloadavg())},
                    "command": "python " + " ".join([sys.argv[0], *(argv if argv is not None else sys.argv[1:])]),
                    "backend": a.backend, "texts": TEXTS, "instruct_every_s": list(every), "cleanup": a.cleanup,
                    "modes": {}}
    result["server_args"] = args
    srv = ServerProcess(args, log_path=log_path, timeout_s=600)
    result["server_startup_s"] = srv.startup_s
    kept: dict[str, list[SessionClient]] = {}
    fresh: dict[str, dict] = {}
    steady: dict[str, list] = {}
    try:
        # warm-up: one short session per mode and one Generate (first calls load things)
        for mode in a.modes:
            asyncio.run(run_sessions(srv.target, 2, 4.0, mode == "guided", every, 0.0, a.seed))
        for mode in a.modes:
            g = mode == "guided"
            r = result["modes"].setdefault(mode, {})
            if "latency" not in a.skip:
                cpu = CpuMeter(srv.proc.pid)
                with tqdm(mininterval=5, desc=f"{mode}: {a.latency_sessions} sessions, latency", unit="frame") as bar:
                    cs = asyncio.run(run_sessions(srv.target, a.latency_sessions, a.latency_s, g, every, 1.0,
                                                  a.seed + 100, keep_frames=True, bar=bar,
                                                  cleanup={"default": None, "on": True, "off": False}[a.cleanup]))
                r["latency"] = {**session_summary(cs), "cpu": cpu.result(), "seconds": a.latency_s}
                r["seams"] = seam_metrics(cs, server_session_config(args))
                kept[mode] = cs
            if "recognition" not in a.skip:
                t = time.monotonic()
                fresh[mode] = asyncio.run(fresh_generates(srv.target, g, a.fresh_seeds, a.fresh_duration))
                r["fresh_generate_s"] = time.monotonic() - t
                if a.steady_s > 0:
                    steady[mode] = asyncio.run(steady_sessions(srv.target, g, a.fresh_seeds, a.steady_s))
        for mode in a.modes:
            if "ramp" in a.skip:
                break
            g = mode == "guided"
            levels = []
            for n in a.ramp:
                cpu = CpuMeter(srv.proc.pid)
                with tqdm(mininterval=5, desc=f"{mode}: {n} sessions, real time", unit="frame") as bar:
                    cs = asyncio.run(run_sessions(srv.target, n, a.ramp_s, g, every, a.stagger_s,
                                                  a.seed + 1000 * n, bar=bar))
                s = session_summary(cs)
                s["cpu"] = cpu.result()
                s["frames_per_s_needed"] = n * FPS
                levels.append(s)
                tqdm.write(f"{mode} {n}: underruns {s['underruns']} in {s['sessions_with_underruns']} sessions "
                           f"(max late {s['max_late_ms']:.0f} ms), errors {s['n_errors']}, "
                           f"server {s['cpu']['server_cores']:.2f} cores, others {s['cpu']['other_cores']:.2f}")
                if (s["underruns"] or s["n_errors"]) and not a.ramp_continue:
                    break
                time.sleep(2.0)
            ok = [lv["sessions"] for lv in levels if not lv["underruns"] and not lv["n_errors"]]
            result["modes"][mode]["ramp"] = {"seconds_per_level": a.ramp_s, "stagger_s": a.stagger_s,
                                             "levels": levels, "max_realtime_sessions": max(ok, default=0)}
        if "long" not in a.skip:
            g = a.long_mode == "guided"
            samples = []

            async def probe():
                t0 = time.monotonic()
                while True:
                    samples.append((time.monotonic() - t0, rss_mb(srv.proc.pid)))
                    await asyncio.sleep(10.0)

            cpu = CpuMeter(srv.proc.pid)
            secs = 60.0 * a.long_minutes
            with tqdm(mininterval=5, desc=f"long session ({a.long_mode}, {a.long_minutes:g} min)", unit="frame",
                      total=int(secs * FPS)) as bar:
                cs = asyncio.run(run_sessions(srv.target, 1, secs, g, every, 0.0, a.seed + 7, lookahead_s=1.0,
                                              bar=bar, probe=probe))
            samples.append((secs, rss_mb(srv.proc.pid)))
            rss = [x[1] for x in samples]
            result["long"] = {"minutes": a.long_minutes, "mode": a.long_mode, "lookahead_s": 1.0,
                              **session_summary(cs), "cpu": cpu.result(),
                              "rss_mb": {"start": rss[0], "end": rss[-1], "max": max(rss), "growth": rss[-1] - rss[0],
                                         "growth_max": max(rss) - rss[0],
                                         "growth_after_first_minute": rss[-1] - next((m for t, m in samples if t >= 60),
                                                                                     rss[0]),
                                         "samples": [[round(t, 1), round(m, 2)] for t, m in samples]}}
    finally:
        rc = srv.stop()
    result["server_exit_code"] = rc
    log = log_path.read_text()
    result["log"] = {"lines": log.count("\n"), "tracebacks": log.count("Traceback")}
    if "recognition" not in a.skip and kept:
        from coamd.runtime import load_engine

        engine = load_engine(a.backend, a.checkpoint, guidance=False)
        for mode, cs in kept.items():
            result["modes"][mode]["recognition"] = recognition(engine, cs, fresh.get(mode, {}),
                                                             steady.get(mode, []))
    if a.save_frames and kept:
        arrays = {}
        for mode, cs in kept.items():
            for c in cs:
                arrays[f"{mode}_{c.seed}_joints"] = c.joints()
                arrays[f"{mode}_{c.seed}_switches"] = np.asarray(sorted(s["first_frame"] for s in c.switches), np.int64)
        np.savez_compressed(a.save_frames, **arrays)
    try:
        result["real_test_clips"] = real_max_step(a.dataset)
    except (OSError, ValueError) as exc:
        result["real_test_clips"] = {"error": str(exc)}
    result["wall_s"] = time.monotonic() - t_start
    result["machine"]["loadavg_at_end"] = list(os.getloadavg())
    out.with_suffix(".json").write_text(json.dumps(result, indent=1))
    md = markdown(result)
    out.with_suffix(".md").write_text(md)
    print(md)
    return 0


def _f(x, fmt="{:.0f}") -> str:
    return "-" if x is None or (isinstance(x, float) and not np.isfinite(x)) else fmt.format(x)


def _busiest(c: dict) -> str:
    b = c.get("busiest_thread")
    return f"{b['on_cpu']:.2f} ({b['runqueue_wait']:.2f})" if b else "-"


def markdown(r: dict) -> str:
    m = r["machine"]
    lines = [f"# Session RPC benchmark ({r['backend']})", "",
             f"Machine: {m['cpu']}, {m['cores']} cores; load average {m['loadavg_at_start'][0]:.2f} at the start, "
             f"{m['loadavg_at_end'][0]:.2f} at the end (1 min); wall {r['wall_s'] / 60:.1f} min.", "",
             f"Command: `{r['command']}`"
             + (f"; server: `coamd serve {' '.join(r['server_args'])}` (other settings at their defaults: max "
                "batch 8 unless given, expected-wait bound 2 s)" if "server_args" in r else "") + ".", "",
             f"Instructions every {r['instruct_every_s'][0]:g}-{r['instruct_every_s'][1]:g} s cycling through "
             f"{len(r['texts'])} texts; foot-contact cleanup {r.get('cleanup', 'default')}. Playhead: starts when a session's first frame arrives, 20 fps; an underrun "
             "is a frame that arrives after its play time.", ""]
    real = r.get("real_test_clips", {}).get("max_step_m")
    lines += ["## Instruction latency and seams", "",
              "| mode | sessions | instructions | client p50 ms | client p99 ms | server p50 ms | server p99 ms "
              "| plays after p50 ms | underruns | server cores | other cores | load avg |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for mode, v in r["modes"].items():
        lt = v.get("latency")
        if not lt:
            continue
        c = lt["cpu"]
        lines.append(f"| {mode} | {lt['sessions']} | {lt['instructions']} | {_f(lt['client_p50_ms'])} | "
                     f"{_f(lt['client_p99_ms'])} | {_f(lt['server_p50_ms'])} | {_f(lt['server_p99_ms'])} | "
                     f"{_f(lt['play_p50_ms'])} | {lt['underruns']} | {c['server_cores']:.2f} | {c['other_cores']:.2f} | "
                     f"{c['loadavg_end'][0]:.2f} |")
    lines += ["", "Target: client p50 <= 300 ms, p99 <= 600 ms with 8 sessions open. \"Plays after\": instruction "
              "sent -> its first frame's play time on the client's playhead (it includes the frames already buffered, up to the lookahead of about 1 s).", "",
              "| mode | seam windows | inside windows | jitter seam / inside (m/s^3) | ratio | skate speed seam / inside (m/s) "
              "| ratio | skate ratio seam / inside | ratio | ratios against the same texts inside | largest step (m) | at seams | real test clips |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for mode, v in r["modes"].items():
        s = v.get("seams")
        if not s:
            continue
        lines.append(f"| {mode} | {s['seam']['windows']} | {s['inside']['windows']} | "
                     f"{s['seam']['jitter']:.1f} / {s['inside']['jitter']:.1f} | {s['jitter_ratio']:.2f} | "
                     f"{s['seam']['skate_speed']:.3f} / {s['inside']['skate_speed']:.3f} | {s['skate_speed_ratio']:.2f} | "
                     f"{s['seam']['skate_ratio']:.3f} / {s['inside']['skate_ratio']:.3f} | {s['skate_ratio_ratio']:.2f} | "
                     f"{matched_ratios_cell(s)} | {s['max_step_m']:.3f} | {s['max_step_at_seam_m']:.3f} | {_f(real, '{:.3f}')} |")
    lines += ["", "Target: seam / inside <= 1.5; largest step <= the largest in the real test clips. \"Ratios "
              "against the same texts inside\" (jitter / skate speed / skate ratio): each seam against the inside "
              "windows of its own two texts (`seam_metrics`), since the actions differ several times over in "
              "skating and the pooled inside windows are mostly stationary ones.", ""]
    for mode, v in r["modes"].items():
        s = v.get("seams")
        if s and "largest_steps" in s:
            t = s["largest_steps"][0] if s["largest_steps"] else {}
            lines.append(f"- {mode}: largest step onto a window's first frame {s['max_step_onto_window_start_m']:.3f} m, "
                         f"within windows {s['max_step_within_windows_m']:.3f} m; the largest "
                         f"({t.get('step_m', 0):.3f} m) is the {t.get('joint')} "
                         f"{'onto a window start' if t.get('window_start') else 'within a window'}"
                         f"{', near a switch' if t.get('near_switch') else ''}; steps above the real maximum: "
                         f"{sum(1 for x in s['largest_steps'] if real and x['step_m'] > real)} of the 10 largest")
    lines.append("")
    if any("recognition" in v for v in r["modes"].values()):
        lines += ["| mode | after a switch (2 s) | n | fresh Generate, first 2 s | fresh, whole clip | n | gap (points) |",
                  "|---|---|---|---|---|---|---|"]
        for mode, v in r["modes"].items():
            g = v.get("recognition")
            if g:
                ci = lambda k, f="{:.1f}": (f" ({f.format(g[k][0])} to {f.format(g[k][1])})" if k in g else "")
                lines.append(f"| {mode} | {g['after_switch_pct']:.1f} %{ci('after_switch_ci95')} | {g['after_switch_n']} | "
                             f"{g['fresh_2s_pct']:.1f} %{ci('fresh_2s_ci95')} | "
                             f"{g['fresh_full_pct']:.1f} % | {g['fresh_n']} | {g['gap_points']:+.1f}{ci('gap_ci95', '{:+.1f}')} |")
        lines += ["", "Recognised = the recognizer's top-1 content equals the text's understood content; in brackets "
                  "the 95 % interval (Wilson; Newcombe's hybrid score interval for the gap). "
                  "Target: after a switch within 5 points of a fresh Generate.", ""]
        for mode, v in r["modes"].items():
            g = v.get("recognition")
            if g:
                st = ", ".join(f"{k} {x['pct']:.0f} % (n {x['n']})" for k, x in g.get("steady", {}).items())
                lines.append(f"- {mode}: after a switch recognised as the previous instruction's action: "
                             f"{_f(g.get('after_switch_as_previous_pct'), '{:.0f}')} %; sessions that keep one text "
                             f"(no switch): {st or '-'}")
        lines.append("")
    if any("ramp" in v for v in r["modes"].values()):
        lines += ["## Real-time capacity", "",
                  "| mode | sessions | frames | underruns (first window) | sessions with underruns | max late ms "
                  "| errors | server cores | busiest server thread cores (waiting) | client cores | other cores | load avg |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for mode, v in r["modes"].items():
            for lv in v.get("ramp", {}).get("levels", []):
                c = lv["cpu"]
                lines.append(f"| {mode} | {lv['sessions']} | {lv['frames']} | {lv['underruns']} ({lv['underruns_startup']}) | "
                             f"{lv['sessions_with_underruns']} | {lv['max_late_ms']:.0f} | {lv['n_errors']} | "
                             f"{c['server_cores']:.2f} | {_busiest(c)} | {c['client_cores']:.2f} | {c['other_cores']:.2f} | "
                             f"{c['loadavg_end'][0]:.2f} |")
        lines.append("")
        for mode, v in r["modes"].items():
            if "ramp" in v:
                rp = v["ramp"]
                if rp["max_realtime_sessions"]:
                    lines.append(f"- {mode}: at most **{rp['max_realtime_sessions']}** real-time sessions without "
                                 f"an underrun ({rp['seconds_per_level']:g} s per level)")
                else:
                    lines.append(f"- {mode}: no level tried ran without an underrun (lowest tried: "
                                 f"{min(lv['sessions'] for lv in rp['levels'])}; {rp['seconds_per_level']:g} s per level)")
        lines += ["", "Target: unguided >= 32.", ""]
    if "long" in r:
        lg = r["long"]
        rs = lg["rss_mb"]
        lines += ["## Long session", "",
                  f"One {lg['mode']} session for {lg['minutes']:g} min (the issue asks 30), lookahead 1 s: "
                  f"{lg['frames']} frames, {lg['instructions']} instructions, {lg['underruns']} underruns "
                  f"(max late {lg['max_late_ms']:.0f} ms), errors {lg['n_errors']}. Server RSS {rs['start']:.1f} MB -> "
                  f"{rs['end']:.1f} MB (growth {rs['growth']:+.1f} MB, max {rs['growth_max']:+.1f} MB, after the first "
                  f"minute {rs['growth_after_first_minute']:+.1f} MB). Target: growth < 20 MB, no underrun.", ""]
    lines += [f"Server log: {r['log']['lines']} lines, {r['log']['tracebacks']} tracebacks; exit code "
              f"{r['server_exit_code']}.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
