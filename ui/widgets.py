"""Reusable page parts: model card, evaluation, face cards, the privacy note."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd
import streamlit as st

from fer.draw import EMOTION_COLORS
from fer.labels import EMOTIONS
from ui import charts

PRIVACY_NOTES = {
    "photos": "Privacy: your photos are processed in memory on the server and never written to disk or kept; "
              "results leave only through the downloads you click.",
    "webcam": "Privacy: camera frames are processed in memory as they arrive and never stored or recorded; "
              "only the emotion timeline of this session is kept, in memory, while the page is open.",
    "training": "Privacy: data uploaded here is used for this training only: it is unpacked into a fresh "
                "temporary folder, read into memory and deleted before the training starts (never cached). "
                "The trained model joins the model list only when you press Save.",
    "app": "Privacy: photos and webcam frames are processed in memory and never stored; data uploaded for "
           "training is kept only until the training has read it, and a model only when you save it.",
}


def privacy_note(kind: str) -> None:
    """The page's privacy line (``kind``: photos, webcam, training or app) as a caption."""
    if kind not in PRIVACY_NOTES:
        raise ValueError(f"unknown privacy note {kind!r}; use one of {', '.join(PRIVACY_NOTES)}")
    st.caption(PRIVACY_NOTES[kind])


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h {m:02d}m" if h else (f"{m}m {s:02d}s" if m else f"{s}s")


def per_class_table(metrics: dict) -> pd.DataFrame:
    rows = [{"emotion": e, **metrics["per_class"][e]} for e in EMOTIONS if e in metrics.get("per_class", {})]
    return pd.DataFrame(rows).set_index("emotion") if rows else pd.DataFrame()


def evaluation(metrics: dict, key: str, title: str = "") -> None:
    """Accuracy, loss, per-class table and confusion heatmap of one evaluated split."""
    if title:
        st.markdown(f"**{title}**")
    c1, c2, c3 = st.columns(3)
    c1.metric("Accuracy", f"{metrics['accuracy']:.1%}")
    c2.metric("Loss", f"{metrics['loss']:.3f}")
    c3.metric("Images", f"{metrics['n']:,}")
    left, right = st.columns([2, 3])
    with left:
        st.plotly_chart(charts.recall_bar(metrics["per_class"]), key=f"{key}_recall")
        st.dataframe(per_class_table(metrics), column_config={
            "precision": st.column_config.NumberColumn(format="%.3f"),
            "recall": st.column_config.NumberColumn(format="%.3f"),
            "f1": st.column_config.NumberColumn(format="%.3f")})
    with right:
        st.plotly_chart(charts.confusion_heatmap(metrics["confusion"], metrics.get("labels", EMOTIONS)),
                        key=f"{key}_confusion")


def split_table(card_metrics: dict) -> pd.DataFrame:
    rows = [{"split": name.replace("_", " "), "accuracy": m["accuracy"], "loss": m.get("loss"), "images": m.get("n"),
             "test-time augmentation": m.get("tta") or "none"}
            for name, m in card_metrics.items() if isinstance(m, dict) and "accuracy" in m]
    return pd.DataFrame(rows)


def data_table(data: dict) -> pd.DataFrame:
    splits = data.get("splits", {})
    rows = [{"split": name, "images": info.get("n", 0), **info.get("classes", {})} for name, info in splits.items()]
    return pd.DataFrame(rows)


def profiles_rows(doc: dict) -> list[dict]:
    """One row per shipped profile of ``models/profiles.json``: recipe, public_test figures, cost per face."""
    rows = []
    for name, spec in doc.get("profiles", {}).items():
        pt = spec.get("public_test", {})
        plain = pt.get("uncorrected", {})
        weights = spec.get("weights") or [None] * len(spec["members"])
        models = " + ".join(m.removesuffix(".keras") + (f" ({w:.0%})" if w is not None else "")
                            for m, w in zip(spec["members"], weights))
        rows.append({"profile": name, "models": models,
                     "TTA": spec.get("tta") or "none", "passes per face": spec.get("passes"),
                     "accuracy": pt.get("accuracy"), "balanced accuracy": pt.get("balanced_accuracy"),
                     "uncorrected accuracy": plain.get("accuracy"),
                     "uncorrected balanced": plain.get("balanced_accuracy"),
                     "tau": spec.get("tau"), "ms per face": spec.get("ms_per_face")})
    return rows


def profiles_table(doc: dict) -> None:
    """The shipped profiles: what photos/videos (photo) and the webcam (live) run, and how well."""
    pct = st.column_config.NumberColumn(format="%.4f")
    st.dataframe(profiles_rows(doc), hide_index=True, column_config={
        k: pct for k in ("accuracy", "balanced accuracy", "uncorrected accuracy", "uncorrected balanced")})
    st.caption("FER2013 public_test (3,589 faces). Photos and videos use **photo**, the live webcam **live** "
               "(in the browser mode: its first model alone). "
               "Both divide out the training set's class prior (tau chosen on public_test balanced accuracy), so "
               "rare emotions such as disgust and fear are not under-called. Measure with "
               "`python -m fer evaluate --data path/to/fer2013 --profile photo|live`.")


def model_card(entry, key: str = "card") -> None:
    """Everything the card says: budget, data, metrics per split, per-class recall, confusion, curves."""
    card = entry.card
    cfg = card.config or {}
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Architecture", card.architecture)
    acc = entry.headline_accuracy()
    c2.metric(f"Accuracy ({acc[0].replace('_', ' ')})" if acc else "Accuracy",
              f"{acc[1]:.1%}" if acc else "not evaluated")
    if card.averaged:
        c3.metric("Epochs averaged", f"{card.averaged.get('first_epoch')}-{card.averaged.get('last_epoch')} "
                                     f"of {card.epochs}")
    else:
        c3.metric("Best epoch", f"{card.best_epoch} of {card.epochs}" if card.epochs else "–")
    c4.metric("Training time", duration(card.wall_time_s) if card.wall_time_s else "–")
    st.caption(f"File `{entry.path}` · created {card.created} · {card.hardware or 'hardware not recorded'}"
               f"{' · precision ' + card.precision if card.precision else ''}"
               f"{' · backend ' + card.backend if card.backend else ''}")

    metrics = {k: v for k, v in (card.metrics or {}).items() if isinstance(v, dict) and "per_class" in v}
    if not metrics:
        st.info("This model's card holds no evaluation yet. Evaluate it with "
                "`python -m fer evaluate --data DATA --model FILE`, or train one on the **Train** page.")
    else:
        st.subheader("Accuracy per split")
        st.dataframe(split_table(card.metrics), hide_index=True, column_config={
            "accuracy": st.column_config.NumberColumn(format="%.4f"),
            "loss": st.column_config.NumberColumn(format="%.4f")})
        names = list(metrics)
        default = names.index("public_test") if "public_test" in names else 0
        split = st.selectbox("Split for the per-class figures", names, index=default, key=f"{key}_split",
                             format_func=lambda s: s.replace("_", " "))
        evaluation(metrics[split], key=f"{key}_{split}")

    if card.history:
        st.subheader("Training curves")
        st.plotly_chart(charts.training_curves(card.history), key=f"{key}_curves")

    st.subheader("Training budget and data")
    b1, b2, b3, b4 = st.columns(4)
    b1.metric("Epochs", card.epochs or "–")
    b2.metric("Batch size", cfg.get("batch_size", "–"))
    b3.metric("Learning rate", cfg.get("lr", "–"))
    b4.metric("Augmentation", {True: "on", False: "off"}.get(cfg.get("augment"), "–"))
    data = card.data or {}
    if data:
        st.markdown(f"Data: `{data.get('source', '?')}` ({data.get('form', '?')})")
        st.dataframe(data_table(data), hide_index=True)
    with st.expander("Full training configuration and command"):
        st.json(cfg, expanded=False)
        if card.command:
            st.code(card.command, language="bash")


def face_card(face: dict, crop, key: str) -> None:
    """One detected face: its crop, the emotion and the 7 probabilities."""
    with st.container(border=True):
        left, right = st.columns([1, 2.5], vertical_alignment="center")
        left.image(crop, caption=f"face {face['face']}", width=72, clamp=True)
        right.markdown(f"**{face['emotion']}** · {face['score']:.0%}  \n"
                       f"<small>box x={face['x']} y={face['y']} {face['width']}×{face['height']} · "
                       f"detector {face['detector_score']:.2f}</small>", unsafe_allow_html=True)
        st.markdown(probability_rows(face["scores"]), unsafe_allow_html=True)


def probability_rows(scores: Mapping[str, float]) -> str:
    """The 7 probabilities as HTML bars in label order and the emotions' colours: drawn at once, with no
    chart library to load (a page of face cards stays light; the Results chart is the plotly view)."""
    rows = []
    for e in (e for e in EMOTIONS if e in scores):
        p = min(max(float(scores[e]), 0.0), 1.0)
        rows.append(f'<span>{e}</span><span style="background:rgba(128,128,128,.15);border-radius:3px;height:.8em">'
                    f'<span style="display:block;width:{p:.1%};height:100%;background:{EMOTION_COLORS.get(e, "#888")};'
                    f'border-radius:3px"></span></span><span style="text-align:right">{p:.0%}</span>')
    return ('<div class="fer-probs" style="display:grid;grid-template-columns:5.5em 1fr 3em;gap:2px 8px;'
            f'align-items:center;font-size:.85em;margin-bottom:.5em">{"".join(rows)}</div>')
