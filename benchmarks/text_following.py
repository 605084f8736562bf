"""Text following on free phrasing: do motions generated from sentences people actually write show
the asked-for action, style and side?

The sentences are ``benchmarks/data/free_phrasing.jsonl`` (hand-written, labelled with content,
style and side; ``dev`` and ``test`` splits, stratified by content; ``test`` is never used to
choose settings). For every sentence x seed one motion is generated with the shipped checkpoint
(:func:`coamd.runtime.load_engine`, ONNX Runtime by default, the runtime's foot-contact cleanup
on), guided and/or unguided, and judged by

* the action recognizer (:meth:`Engine.recognize` top-1): content, style, and side (the side of
  the recognised content label: ``wave-left-hand`` -> left, ``raise-up-both-hands`` -> both);
* the independent evaluator network (:mod:`coamd.evaluation.evaluator`) zero-shot: the content
  label text (``labels.json`` ``content_texts``) whose evaluator text embedding is closest (cosine)
  to the generated motion's evaluator embedding; side from that content.

Style accuracy counts sentences that name a style, side accuracy sentences whose content has a
side. Reported overall, for actions with >= 15 training source clips versus rare ones (source
clips: the train split of ``clips.json`` without mirrored copies), per action with its number
of training clips, and per sentence. The frequent actions' styled sentences are split once more by
how often the dataset captured that action in that style: set 2 records its 10 actions in 7 styles
(16-83 clips per pair), set 1 adds 9 more styles with 1-2 clips per action, so "a giant walks" has
one or two real clips to learn from where "an elderly person walks" has dozens. A reference row
scores real test-split clips with the same two judges in the same run (rare actions have no test
clips).

Motions are generated as the server generates them by default: token order ``left_to_right``
(``--order``; the order ``Generate`` streams in for every gRPC and engine client, ``coamd request``
and sessions), the understood text (``--condition rewrite``), cleanup and skeleton projection on.
``--order random`` is the in-process ``coamd generate``'s default; results before this option
existed were measured in that order.

``--condition`` chooses what conditions the generator (and its recognizer guidance): ``raw`` (the
sentence as written), ``rewrite`` (:func:`coamd.models.understanding.rewrite_for_generator`: the
understood labels in the training captions' phrasing), ``rewrite+text`` (that sentence followed by
the request's own words), ``blend`` (the normalised mean of the raw sentence's and the rewrite's
text features) or ``oracle`` (a diagnostic, not a runtime option: the LABELLED content and style
in the captions' phrasing, i.e. what perfect understanding would give).

Run: ``python -m benchmarks.text_following --split dev --seeds 2 --duration 4``
(``--help`` for options). Writes ``--out``.json and ``--out``.md.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hardware import machine  # noqa: E402

DATA = Path(__file__).resolve().parent / "data"
FREE_PHRASING = DATA / "free_phrasing.jsonl"
FREQUENT_MIN_CLIPS = 15
CONDITIONS = ("raw", "rewrite", "rewrite+text", "blend", "oracle")


def content_side(content: str | None) -> str | None:
    """Side named by a content label: ``left``, ``right``, ``both`` or None (e.g. ``bow``)."""
    if content is None:
        return None
    if content.endswith("-left") or "-left-" in content:
        return "left"
    if content.endswith("-right") or "-right-" in content:
        return "right"
    if "-both-" in content:
        return "both"
    return None


def load_sentences(split: str, path: str | Path = FREE_PHRASING) -> list[dict]:
    """Rows of ``path`` whose ``split`` is ``split`` (``dev``, ``test`` or ``all``)."""
    rows = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    return rows if split == "all" else [r for r in rows if r["split"] == split]


def training_clip_counts(dataset: str | Path) -> dict[str, dict[str, int]]:
    """{content: {"source": n, "with_mirrors": m}} over the train split of ``clips.json``."""
    clips = json.loads((Path(dataset) / "clips.json").read_text())
    src = Counter(c["content"] for c in clips if c["split"] == "train" and not c["mirrored"])
    allc = Counter(c["content"] for c in clips if c["split"] == "train")
    return {k: {"source": src.get(k, 0), "with_mirrors": allc.get(k, 0)} for k in set(src) | set(allc)}


def training_pair_counts(dataset: str | Path) -> dict[tuple[str, str], int]:
    """{(content, style): n source clips} over the train split of ``clips.json``."""
    clips = json.loads((Path(dataset) / "clips.json").read_text())
    return dict(Counter((c["content"], c["style"]) for c in clips if c["split"] == "train" and not c["mirrored"]))


def generator_texts(engine, rows: list[dict], condition: str) -> list[str]:
    """The texts the generator is conditioned on for ``condition`` (for ``blend`` the rewrites,
    whose features :func:`generator_features` mixes with the sentence's)."""
    texts = [r["text"] for r in rows]
    if condition == "raw":
        return texts
    if condition == "oracle":  # diagnostic: the labelled content/style in the captions' phrasing
        from coamd.data.captions import CONTENT_PHRASES, STYLE_PHRASES

        out = []
        for r in rows:
            s = f"{STYLE_PHRASES[r['style']][0] if r['style'] else 'a person'} {CONTENT_PHRASES[r['content']][0]}."
            out.append(s[0].upper() + s[1:])
        return out
    from coamd.models.understanding import rewrite_for_generator

    if condition in ("rewrite", "blend") and hasattr(engine, "understand"):
        return [engine.understand(t, "understood")[1] for t in texts]  # the runtime's own path
    if condition in ("rewrite", "rewrite+text", "blend"):
        return [rewrite_for_generator(t, engine=engine, keep_text=condition == "rewrite+text") for t in texts]
    raise ValueError(f"unknown condition {condition!r}; expected one of {CONDITIONS}")


def generator_features(engine, rows: list[dict], condition: str) -> np.ndarray:
    """Text features (N, 384) that condition the generator and its guidance for ``condition``:
    those of :func:`generator_texts`, or for ``blend`` the normalised mean of the raw sentence's
    and the rewrite's features."""
    feats = engine.sampler.encode_text(generator_texts(engine, rows, condition))
    if condition == "blend":
        f = engine.sampler.encode_text([r["text"] for r in rows]) + feats
        return f / np.linalg.norm(f, axis=1, keepdims=True)
    return feats


def generate(engine, rows: list[dict], seeds: list[int], duration: float, guided: bool, condition: str,
             batch_size: int, bar=None, **settings) -> dict[tuple[int, int], np.ndarray]:
    """{(sentence index, seed): joints (T, 21, 3)} with the runtime's cleanup on."""
    from coamd.sampling.sampler import GenerationRequest

    texts = [r["text"] for r in rows]
    feats = generator_features(engine, rows, condition)
    jobs = [(i, s) for s in seeds for i in range(len(texts))]
    out = {}
    for b in range(0, len(jobs), batch_size):
        chunk = jobs[b:b + batch_size]
        states = [engine.sampler.start(GenerationRequest(text=texts[i], duration_s=duration, seed=s,
                                                         guidance=guided, **settings), feats[i])
                  for i, s in chunk]
        parts: list[list[np.ndarray]] = [[] for _ in states]
        while not all(st.done for st in states):
            for p, c in zip(parts, engine.sampler.step(states)):
                if len(c.joints):
                    p.append(c.joints)
        for key, p in zip(chunk, parts):
            out[key] = np.concatenate(p)
        if bar is not None:
            bar.update(len(chunk))
    return out


class Judges:
    """Recognizer top-1 and evaluator zero-shot content of motions (T, 21, 3) metres at 20 fps."""

    def __init__(self, engine, labels: dict):
        from coamd.evaluation.evaluator import load_evaluator

        self.engine = engine
        self.contents = list(labels["contents"])
        self.evaluator = load_evaluator()
        self.label_emb = self.evaluator.embed_texts(list(labels["content_texts"]))  # (C, E) unit

    def __call__(self, motions: list[np.ndarray]) -> list[dict]:
        rec = [self.engine.recognize(m, top_k=1) for m in motions]
        ev = self.evaluator.embed_clips(motions) @ self.label_emb.T
        out = []
        for r, e in zip(rec, ev):
            c, zs = r["content"][0].label, self.contents[int(np.argmax(e))]
            out.append({"content": c, "style": r["style"][0].label, "side": content_side(c),
                        "eval_content": zs, "eval_side": content_side(zs)})
        return out


def _acc(pairs: list[tuple]) -> float | None:
    return float(np.mean([a == b for a, b in pairs])) if pairs else None


def summarise(items: list[dict]) -> dict:
    """Accuracies of judged motions ``items`` ({row, judged}) -> dict with counts."""
    c = [(x["judged"]["content"], x["row"]["content"]) for x in items]
    s = [(x["judged"]["style"], x["row"]["style"]) for x in items if x["row"]["style"]]
    sd = [(x["judged"]["side"], x["row"]["side"]) for x in items if x["row"]["side"]]
    ec = [(x["judged"]["eval_content"], x["row"]["content"]) for x in items]
    es = [(x["judged"]["eval_side"], x["row"]["side"]) for x in items if x["row"]["side"]]
    return {"content_acc": _acc(c), "style_acc": _acc(s), "side_acc": _acc(sd), "eval_content_acc": _acc(ec),
            "eval_side_acc": _acc(es), "n_motions": len(c), "n_styled": len(s), "n_sided": len(sd)}


def reference_row(judges: Judges, dataset: str, clips: int, duration: float, seed: int = 0) -> dict:
    """The same judges on real test-split clips (first ``duration`` seconds), one per source clip."""
    from coamd.data.dataset import MotionDataset

    test = [c for c in MotionDataset(dataset).split("test") if not c.id.endswith("_mirror")]
    rng = np.random.default_rng(seed)
    pick = [test[i] for i in rng.choice(len(test), size=min(clips, len(test)), replace=False)]
    motions = [c.joints[: max(8, int(duration * 20))] for c in pick]
    items = [{"row": {"content": c.content, "style": c.style, "side": content_side(c.content)}, "judged": j}
             for c, j in zip(pick, judges(motions))]
    return summarise(items)


def run(engine, rows: list[dict], seeds: list[int], duration: float, modes: list[bool], condition: str,
        dataset: str, batch_size: int = 16, progress: bool = True, reference_clips: int = 96,
        **settings) -> dict:
    """Generate and judge every row x seed in every guidance mode; returns the result dict."""
    from tqdm import tqdm

    labels = json.loads((Path(dataset) / "labels.json").read_text())
    counts = training_clip_counts(dataset)
    pairs = training_pair_counts(dataset)
    judges = Judges(engine, labels)
    result = {"modes": {}, "per_sentence": [], "training_clips": counts,
              "training_pair_clips": {f"{c}/{st}": n for (c, st), n in sorted(pairs.items())}}
    per_sentence = {r["id"]: {"id": r["id"], "text": r["text"], "content": r["content"], "style": r["style"],
                              "side": r["side"], "judged": {}} for r in rows}
    if condition != "raw":
        for r, t in zip(rows, generator_texts(engine, rows, condition)):
            per_sentence[r["id"]]["generator_text"] = (t if condition != "blend"
                                                       else f"mean of the features of the text and {t!r}")
    bar = tqdm(total=len(rows) * len(seeds) * len(modes), desc="generating", unit="motion", disable=not progress)
    for guided in modes:
        name = "guided" if guided else "unguided"
        t0 = time.perf_counter()
        motions = generate(engine, rows, seeds, duration, guided, condition, batch_size, bar, **settings)
        gen_s = time.perf_counter() - t0
        keys = sorted(motions)
        judged = dict(zip(keys, judges([motions[k] for k in keys])))
        items = [{"row": rows[i], "judged": judged[(i, s)]} for i, s in keys]
        by_content = defaultdict(list)
        for it in items:
            by_content[it["row"]["content"]].append(it)
        frequent = [it for it in items if counts.get(it["row"]["content"], {}).get("source", 0) >= FREQUENT_MIN_CLIPS]
        rare = [it for it in items if counts.get(it["row"]["content"], {}).get("source", 0) < FREQUENT_MIN_CLIPS]
        pair_n = [(it, pairs.get((it["row"]["content"], it["row"]["style"]), 0)) for it in frequent if it["row"]["style"]]
        result["modes"][name] = {
            "overall": summarise(items),
            f"actions with >= {FREQUENT_MIN_CLIPS} training clips": summarise(frequent),
            f"actions with >= {FREQUENT_MIN_CLIPS} training clips, style captured >= {FREQUENT_MIN_CLIPS} times with the action":
                summarise([it for it, n in pair_n if n >= FREQUENT_MIN_CLIPS]),
            f"actions with >= {FREQUENT_MIN_CLIPS} training clips, style captured < {FREQUENT_MIN_CLIPS} times with the action":
                summarise([it for it, n in pair_n if n < FREQUENT_MIN_CLIPS]),
            f"actions with < {FREQUENT_MIN_CLIPS} training clips": summarise(rare),
            "per_action": {c: {**summarise(v), "training_clips": counts.get(c, {}).get("source", 0),
                               "training_clips_with_mirrors": counts.get(c, {}).get("with_mirrors", 0)}
                           for c, v in sorted(by_content.items())},
            "generation_seconds": gen_s,
            "seconds_per_motion": gen_s / max(1, len(keys)),
        }
        for (i, s), j in judged.items():
            per_sentence[rows[i]["id"]]["judged"].setdefault(name, []).append({"seed": s, **j})
    bar.close()
    result["per_sentence"] = list(per_sentence.values())
    if reference_clips > 0:
        result["reference_real_test_clips"] = reference_row(judges, dataset, reference_clips, duration)
    return result


def understanding_report(model_path: str | None = None, dataset: str = "data/processed", folds: int = 5) -> dict:
    """Text understanding alone (no generation): content/style/side accuracy and out-of-vocabulary
    flag rates of :mod:`coamd.models.understanding` on dev and test, plus two measurements of how
    much the out-of-vocabulary flag owes to the lexicon of unsupported motions:

    * ``similarity_only``: no unsupported class; flag = max cosine to the in-vocabulary training
      texts below a threshold chosen on dev (at most 5 % of dev in-vocabulary sentences flagged);
    * ``concepts_left_out``: the unsupported concepts in ``folds`` folds; each fold refitted
      without its concepts' texts and scored on the benchmark's out-of-vocabulary sentences
      whose nearest lexicon concept is in that fold (dev and test together; the shipped threshold).
    """
    import coamd.models.understanding as U
    from coamd.data.lexicon import UNSUPPORTED, unsupported_phrases

    model = U.TextUnderstanding.load(model_path)
    res = {"model": model.meta, "oov_threshold": model.oov_threshold, "style_threshold": model.style_threshold,
           "splits": {sp: U.evaluate(model, sp, dataset=dataset) for sp in ("dev", "test")},
           "style_sets": {name: U.evaluate(model, sp, dataset=None, sentences=name)
                          for name, sp in (("style_phrasing", "dev"), ("style_check", "check"))
                          if (U.BENCHMARK_DATA / f"{name}.jsonl").exists()}}
    cache = U._feature_cache()
    labels = json.loads((Path(dataset) / "labels.json").read_text())
    contents = list(labels["contents"]) + [U.UNSUPPORTED]
    data = U.training_texts(dataset, model.meta.get("composed", 8000), seed=model.meta.get("seed", 0))
    X = U.encode([d[0] for d in data], cache)
    y = np.array([contents.index(d[1]) for d in data])
    emb = {(n, sp): U.encode([r["text"] for r in U.load_benchmark(n, sp)], cache)
           for n in ("free_phrasing", "out_of_vocabulary") for sp in ("dev", "test")}
    bank = X[y != len(contents) - 1]

    def maxcos(e):
        return (e @ bank.T).max(1)

    thr = max((t for t in np.round(np.arange(0.2, 0.9, 0.01), 2)
               if (maxcos(emb[("free_phrasing", "dev")]) < t).mean() <= 0.05), default=0.2)
    res["similarity_only"] = {"threshold": float(thr), **{
        f"{sp}_{k}": float((maxcos(emb[(n, sp)]) < thr).mean())
        for sp in ("dev", "test") for k, n in (("oov_flagged", "out_of_vocabulary"),
                                               ("in_vocabulary_flagged", "free_phrasing"))}}
    phrases = unsupported_phrases()
    by_len = sorted(phrases, key=lambda pc: -len(pc[0]))
    concept_of = [next((c for p, c in by_len if p in d[0]), None) if d[1] == U.UNSUPPORTED else None for d in data]
    names = sorted(UNSUPPORTED)
    order = np.random.default_rng(0).permutation(len(names))
    oov_all = np.concatenate([emb[("out_of_vocabulary", "dev")], emb[("out_of_vocabulary", "test")]])
    cemb = U.encode([p for p, _ in phrases], cache)
    nearest = [phrases[int(np.argmax(cemb @ e))][1] for e in oov_all]
    hits, inflag = [], []
    for k in range(folds):
        fold = {names[i] for i in order[k::folds]}
        keep = np.array([c not in fold for c in concept_of])
        W, b = U.fit_logistic(X[keep], y[keep], len(contents))

        def p_oov(e):
            return U._softmax(U.LOGIT_SCALE * e @ W + b)[:, -1]

        sel = [i for i, n in enumerate(nearest) if n in fold]
        hits += list(p_oov(oov_all[sel]) >= model.oov_threshold)
        inflag.append(float((p_oov(emb[("free_phrasing", "dev")]) >= model.oov_threshold).mean()))
    res["concepts_left_out"] = {"folds": folds, "oov_sentences": len(hits), "oov_flagged": float(np.mean(hits)),
                                "dev_in_vocabulary_flagged": float(np.mean(inflag))}
    return res


def understanding_markdown(r: dict) -> str:
    """The understanding report as markdown."""
    d, t = r["splits"]["dev"], r["splits"]["test"]
    rows = [("content", "content_acc"), ("content in top 3", "content_top3_acc"),
            ("style (sentences naming one)", "style_acc"),
            ("no style named -> read as none or normal", "no_style_read_as_none_or_normal"),
            ("side (sentences whose content has one)", "side_acc"), ("side (all sentences)", "side_acc_all"),
            ("out-of-vocabulary sentences flagged", "oov_flagged"),
            ("in-vocabulary sentences flagged", "in_vocabulary_flagged")]
    so, cl = r["similarity_only"], r["concepts_left_out"]
    lines = ["# Text understanding from text alone", "",
             "`coamd.models.understanding` (logistic regressions on the MiniLM embedding, fitted on the train "
             f"captions A-D and the lexicons of `coamd.data.lexicon`: {r['model'].get('training_texts')} texts, "
             f"fit {r['model'].get('fit_seconds')} s) on the free-phrasing sets. Thresholds (out of vocabulary "
             f"{r['oov_threshold']:.2f}, style {r['style_threshold']:.2f}) were chosen on the dev "
             "splits of the free-phrasing and style-phrasing sets; test was never used for a choice.", "",
             f"| measure | dev ({d['sentences']} + {d['oov_sentences']} OOV) | test ({t['sentences']} + "
             f"{t['oov_sentences']} OOV) |", "|---|---|---|"]
    lines += [f"| {name} | {_pct(d[k])} | {_pct(t[k])} |" for name, k in rows]
    if r.get("style_sets"):
        sets = r["style_sets"]
        lines += ["", "Style sets (the frequent actions in each style the dataset recorded with them; "
                      "`style_phrasing` dev chose the thresholds with the free-phrasing dev split, `style_check` "
                      "was written apart and never used for a choice):", "",
                  "| measure | " + " | ".join(f"{n} ({v['split']}, {v['sentences']})" for n, v in sets.items()) + " |",
                  "|---|" + "---|" * len(sets)]
        lines += [f"| {name} | " + " | ".join(_pct(v[k]) for v in sets.values()) + " |"
                  for name, k in rows if all(v[k] is not None for v in sets.values())]
    e = t.get("heldout_family_E_test")
    if e:
        lines += ["", f"Held-out caption family E (never trained on), test split, {e['captions']} captions: content "
                      f"{_pct(e['content_acc'])}, style {_pct(e['style_acc'])}, flagged {_pct(e['flagged'])}."]
    lines += ["", "How much the out-of-vocabulary flag owes to the lexicon of unsupported motions:", "",
              f"* similarity only (no unsupported class; flag when the max cosine to the in-vocabulary training "
              f"texts is below {so['threshold']:.2f}, chosen on dev): OOV flagged {_pct(so['dev_oov_flagged'])} dev / "
              f"{_pct(so['test_oov_flagged'])} test, in-vocabulary flagged {_pct(so['dev_in_vocabulary_flagged'])} / "
              f"{_pct(so['test_in_vocabulary_flagged'])};",
              f"* unsupported concepts left out ({cl['folds']} folds, each refitted without its concepts): "
              f"{_pct(cl['oov_flagged'])} of the {cl['oov_sentences']} OOV sentences nearest to a left-out concept "
              f"still flagged, {_pct(cl['dev_in_vocabulary_flagged'])} of dev in-vocabulary sentences flagged.", "",
              "## Misread test sentences", "", "| sentence | content | read as | p |", "|---|---|---|---|"]
    lines += [f"| {x['text']} | {x['content']} | {x['read']} | {x['p']:.2f} |" for x in t["errors"]]
    lines += ["", f"Missed out-of-vocabulary test sentences: {t['missed_oov'] or 'none'}; in-vocabulary test "
                  f"sentences flagged: {t['flagged_in_vocabulary'] or 'none'}.", ""]
    return "\n".join(lines)


def _pct(x) -> str:
    return "-" if x is None else f"{100 * x:.1f} %"


def markdown(res: dict) -> str:
    """The result as markdown tables (summary, per action, per sentence)."""
    a = res["args"]
    lines = [f"# Text following on free phrasing ({a['split']} split)", "",
             f"{res['n_sentences']} sentences x {len(a['seeds'])} seed(s) {a['seeds']}, {a['duration']} s motions, "
             f"backend {res['backend']}, generator conditioned on: {a['condition']}, cleanup on, "
             f"settings {res['settings'] or 'defaults'}. Machine: {res['machine'].get('cpu')} "
             f"({res['machine'].get('cores')} cores). Wall time {res['wall_seconds']:.0f} s.", "",
             "Judges: the action recognizer's top-1 (content, style; side = side of the recognised content) "
             "and the independent evaluator's zero-shot content (closest content label text). Style over "
             "sentences that name a style, side over sentences whose content has a side.", "",
             "| rows | content (recognizer) | style (recognizer) | side (recognizer) | content (evaluator zero-shot) "
             "| side (evaluator) | motions | s/motion |", "|---|---|---|---|---|---|---|---|"]
    ref = res.get("reference_real_test_clips")
    if ref:
        lines.append(f"| real test clips (reference, {ref['n_motions']}) | {_pct(ref['content_acc'])} | "
                     f"{_pct(ref['style_acc'])} | {_pct(ref['side_acc'])} | {_pct(ref['eval_content_acc'])} | "
                     f"{_pct(ref['eval_side_acc'])} | {ref['n_motions']} | - |")
    for mode, m in res["modes"].items():
        for k, r in m.items():
            if not isinstance(r, dict) or k == "per_action":
                continue
            lines.append(f"| {mode}, {k} | {_pct(r['content_acc'])} | {_pct(r['style_acc'])} | {_pct(r['side_acc'])} "
                         f"| {_pct(r['eval_content_acc'])} | {_pct(r['eval_side_acc'])} | {r['n_motions']} | "
                         f"{m['seconds_per_motion']:.3f} |")
    modes = list(res["modes"])
    lines += ["", "## Per action", "",
              "| action | training clips (with mirrors) | " + " | ".join(
                  f"{m} content / evaluator / style / side" for m in modes) + " |",
              "|---|---|" + "---|" * len(modes)]
    for c in sorted(res["training_clips"], key=lambda c: -res["training_clips"][c]["source"]):
        cells = []
        for m in modes:
            r = res["modes"][m]["per_action"].get(c)
            cells.append("-" if r is None else f"{_pct(r['content_acc'])} / {_pct(r['eval_content_acc'])} / "
                                               f"{_pct(r['style_acc'])} / {_pct(r['side_acc'])}")
        tc = res["training_clips"][c]
        lines.append(f"| {c} | {tc['source']} ({tc['with_mirrors']}) | " + " | ".join(cells) + " |")
    lines += ["", "## Per sentence", "", "Recognised content/style per seed (evaluator content in brackets); "
              "a tick marks the content right for every seed.", "",
              "| id | sentence | content | style | " + " | ".join(modes) + " |", "|---|---|---|---|" + "---|" * len(modes)]
    for s in res["per_sentence"]:
        cells = []
        for m in modes:
            js = s["judged"].get(m, [])
            ok = all(j["content"] == s["content"] for j in js)
            cells.append(("ok " if ok else "") + "; ".join(f"{j['content']}/{j['style']} ({j['eval_content']})"
                                                           for j in js))
        text = s["text"].replace("|", "/")
        if s.get("generator_text"):
            text += f" -> _{s['generator_text']}_"
        lines.append(f"| {s['id']} | {text} | {s['content']} | {s['style'] or '-'} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def parse_settings(items: list[str]) -> dict:
    """``--set KEY=VALUE`` items as a dict of :class:`~coamd.sampling.sampler.GenerationRequest`
    settings; values are parsed as int, else float, else text. Raises ValueError naming an item
    without ``=``, or a key that is not a GenerationRequest field."""
    import dataclasses

    from coamd.sampling.sampler import GenerationRequest

    fields = {f.name for f in dataclasses.fields(GenerationRequest)} - {"text", "edit"}
    settings = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--set expects KEY=VALUE, got {item!r}")
        if key not in fields:
            raise ValueError(f"--set {key}: not a GenerationRequest setting (one of {', '.join(sorted(fields))})")
        for cast in (int, float, str):
            try:
                settings[key] = cast(value)
                break
            except ValueError:
                continue
    return settings


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--split", choices=("dev", "test", "check", "all"), default="dev",
                   help="sentence split (default: dev; benchmarks/data/style_check.jsonl has only 'check')")
    p.add_argument("--seeds", type=int, default=2, help="seeds per sentence: 0..N-1 (default: 2)")
    p.add_argument("--duration", type=float, default=4.0, help="seconds per motion (default: 4)")
    p.add_argument("--limit", type=int, default=None, help="first N sentences only (smoke runs)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--guided", dest="modes", action="store_const", const="guided", help="guided only")
    g.add_argument("--unguided", dest="modes", action="store_const", const="unguided", help="unguided only")
    g.add_argument("--both", dest="modes", action="store_const", const="both", help="guided and unguided (default)")
    p.add_argument("--condition", choices=CONDITIONS, default="raw",
                   help="what conditions the generator (default: raw, the sentence as written)")
    p.add_argument("--backend", default="onnxruntime", help="runtime backend (default: onnxruntime)")
    p.add_argument("--checkpoint", default=None, help="checkpoint folder (default: the shipped one)")
    p.add_argument("--dataset", default="data/processed", help="processed dataset (default: data/processed)")
    p.add_argument("--sentences", default=str(FREE_PHRASING), help="labelled sentences (JSONL)")
    p.add_argument("--batch-size", type=int, default=16, help="requests stepped together (default: 16)")
    p.add_argument("--reference-clips", type=int, default=96, help="real test clips in the reference row (0: none)")
    p.add_argument("--out", default=None, help="output path without extension (default: "
                                               "benchmarks/results/text_following_<split>[_<condition>])")
    p.add_argument("--understanding", action="store_true",
                   help="only the text-understanding report (no generation), dev and test: "
                        "benchmarks/results/text_following_understanding.{json,md}")
    p.add_argument("--order", choices=("left_to_right", "random"), default="left_to_right",
                   help="token order (default: %(default)s, the server's default for Generate and sessions; "
                        "random: the in-process `coamd generate` default)")
    p.add_argument("--set", dest="settings", action="append", default=[], metavar="KEY=VALUE",
                   help="a GenerationRequest setting for every motion, e.g. --set cfg_scale=5 "
                        "(repeatable; values are parsed as int, else float, else text)")
    p.add_argument("--quiet", action="store_true")
    a = p.parse_args(argv)
    try:
        settings = {"order": a.order, **parse_settings(a.settings)}
    except ValueError as e:
        p.error(str(e))
    if a.understanding:
        t0 = time.perf_counter()
        r = understanding_report(dataset=a.dataset)
        r["wall_seconds"] = time.perf_counter() - t0
        out = Path(a.out or "benchmarks/results/text_following_understanding")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.with_suffix(".json").write_text(json.dumps(r, indent=1))
        md = understanding_markdown(r)
        out.with_suffix(".md").write_text(md)
        print(md)
        return 0
    modes = {"guided": [True], "unguided": [False]}.get(a.modes or "both", [False, True])
    rows = load_sentences(a.split, a.sentences)[: a.limit]
    if not rows:
        p.error("no sentences selected")
    from coamd.runtime import load_engine

    t0 = time.perf_counter()
    engine = load_engine(backend=a.backend, checkpoint=a.checkpoint, dataset=a.dataset)
    seeds = list(range(a.seeds))
    res = run(engine, rows, seeds, a.duration, modes, a.condition, a.dataset, a.batch_size,
              progress=not a.quiet, reference_clips=a.reference_clips, **settings)
    res.update({"args": {"split": a.split, "seeds": seeds, "duration": a.duration, "limit": a.limit,
                         "condition": a.condition, "sentences": str(a.sentences)},
                "backend": engine.backend_name, "settings": settings, "n_sentences": len(rows),
                "machine": {**machine(), "platform": platform.platform()},
                "wall_seconds": time.perf_counter() - t0})
    suffix = "" if a.condition == "raw" else "_" + a.condition.replace("+", "_")
    out = Path(a.out or f"benchmarks/results/text_following_{a.split}{suffix}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(res, indent=1))
    md = markdown(res)
    out.with_suffix(".md").write_text(md)
    print("\n".join(md.splitlines()[: 12 + 2 * len(modes) * 3]))
    print(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.md')}; wall time {res['wall_seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
