"""The tables of `vqaudio evaluate` (results.md and the terminal): codec, voice conversion, probe, ABX, each a
`vqaudio.evaluate.report.Table` made from the results dict of `vqaudio.evaluate.run.run_evaluate`."""

from __future__ import annotations

from vqaudio.evaluate.probe import ProbeReport, probe_tables
from vqaudio.evaluate.report import Table, fmt, to_plain


def _codec_table(codec: dict) -> Table:
    t = Table(f"Codec ({len(codec['utterances'])} test utterances)",
              ["system", "bit/s", "entropy-coded bit/s", "STOI", "PESQ-WB", "MCD dB", "log-mel dB"])
    for name, s in codec["systems"].items():
        t.add(name, fmt(s["bitrate"], 0), fmt(s["entropy_bitrate"], 0), s["stoi"], fmt(s["pesq_wb"], 2),
              fmt(s["mcd_db"], 2), fmt(s["log_mel_db"], 2))
    u = codec["usage"]
    t.notes = [f"code usage on test: {u['used']} of {u['codebook_size']} codes, perplexity {fmt(u['perplexity'], 1)} "
               f"({fmt(u['entropy_bits'], 2)} bits/code unigram)", *codec["notes"]]
    return t


def _vc_table(vc: dict) -> Table:
    sid, content, shared = vc["speaker_id"], vc["content"], vc["shared_sentences"]
    t = Table(f"Voice conversion ({vc['conversions']} conversions to {', '.join(vc['targets'])})", ["figure", "value"])
    pct = lambda v: fmt(v, percent=True)  # noqa: E731
    t.add("speaker id: real test utterances correct", pct(sid["real_test_accuracy"]))
    t.add("speaker id: reconstructions identified as source", pct(sid["reconstruction_as_source"]))
    t.add("speaker id: conversions identified as target", pct(sid["conversion_as_target"]))
    t.add("speaker id: conversions still identified as source", pct(sid["conversion_as_source"]))
    t.add("probe accuracy: source codes", pct(content["probe_source"]))
    t.add("probe accuracy: reconstruction re-encoded", pct(content["probe_reconstruction"]))
    t.add("probe accuracy: conversion re-encoded", pct(content["probe_conversion"]))
    t.add("code agreement: reconstruction re-encoded", pct(content["code_agreement_reconstruction"]))
    t.add("code agreement: conversion re-encoded", pct(content["code_agreement_conversion"]))
    t.add(f"MCD to target's reading, converted ({shared['pairs']} pairs)",
          fmt(shared["mcd_conversion_to_target_db"], 2))
    t.add("MCD to target's reading, source (reference)", fmt(shared["mcd_source_to_target_db"], 2))
    f0 = vc.get("f0")
    if f0:
        t.add("mean F0 nearer target's than source's", pct(f0["nearer_target"]))
        t.add(f"mean F0 nearer target's, same-gender pairs ({f0['same_gender_pairs']})",
              pct(f0["nearer_target_same_gender"]))
    t.notes = [f"speaker id: logistic regression on MFCC+delta statistics, trained on {sid['train_utterances']} "
               f"real train utterances of {len(sid['classes'])} speakers", "MCD in dB after DTW"]
    if vc.get("decoding"):
        d = vc["decoding"]
        t.notes.append(f"vocoder decoding: F0 {d['f0_mode']}, postfilter strength {d['gv_strength']:g} "
                       f"({d.get('gv_scale', 'utterance')} scale)")
    return t


def _abx_table(abx: dict) -> Table:
    t = Table(f"ABX phone discrimination error ({abx.get('utterances', 0)} test utterances)",
              ["features", "within speakers", "across speakers", "triplets (within / across)"])
    if "skipped" in abx:
        t.notes = [f"skipped: {abx['skipped']}"]
        return t
    for name in ("codes", "mfcc"):
        r = abx[name]
        t.add("quantised codes" if name == "codes" else "MFCC (baseline)", fmt(r["within"], percent=True),
              fmt(r["across"], percent=True), f"{r['triplets_within']} / {r['triplets_across']}")
    t.notes = ["50% is chance; DTW over frames with angular distance; triphone tokens from phone_ali"]
    return t


def evaluation_tables(results: dict) -> list[Table]:
    """The tables of `vqaudio evaluate` from its results (see `vqaudio.evaluate.run.run_evaluate`)."""
    plain = to_plain(results)
    tables = [_codec_table(plain["codec"]), _vc_table(plain["voice_conversion"])]
    if isinstance(results.get("probe"), ProbeReport):
        tables += probe_tables(results["probe"])
    return tables + [_abx_table(plain["abx"])]
