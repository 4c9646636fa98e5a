"""Plotly figures for the app, in the same emotion colours as the boxes drawn on images."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from fer.draw import EMOTION_COLORS
from fer.labels import EMOTIONS

_MARGIN = dict(l=10, r=10, t=40, b=10)


def _colors(labels: Sequence[str]) -> list[str]:
    return [EMOTION_COLORS.get(label, "#888888") for label in labels]


def faces_overview(rows: Sequence[Mapping], title: str = "The faces' probabilities") -> go.Figure:
    """One 100% bar per face (the rows of ``ui.analysis.table_rows``), split into the 7 probabilities."""
    names = [f"{r['image']} · face {r['face']}" for r in rows]
    fig = go.Figure([go.Bar(name=e, y=names, x=[float(r[f"p_{e}"]) for r in rows], orientation="h",
                            marker_color=EMOTION_COLORS.get(e, "#888888"),
                            hovertemplate=f"%{{y}}: {e} %{{x:.1%}}<extra></extra>") for e in EMOTIONS])
    fig.update_layout(barmode="stack", title=title, height=130 + 28 * len(rows), margin=dict(l=10, r=10, t=80, b=10),
                      xaxis=dict(range=[0, 1], tickformat=".0%"), yaxis=dict(autorange="reversed"),
                      legend=dict(orientation="h", yanchor="bottom", y=1.0, xanchor="left", x=0, traceorder="normal"))
    return fig


def recall_bar(per_class: Mapping[str, Mapping], title: str = "Recall per class") -> go.Figure:
    labels = [e for e in EMOTIONS if e in per_class]
    recall = [float(per_class[e]["recall"]) for e in labels]
    support = [int(per_class[e].get("support", 0)) for e in labels]
    fig = go.Figure(go.Bar(
        x=labels, y=recall, marker_color=_colors(labels), customdata=support,
        text=[f"{r:.0%}" for r in recall], textposition="outside", cliponaxis=False,
        hovertemplate="%{x}: recall %{y:.1%} of %{customdata} images<extra></extra>"))
    fig.update_layout(title=title, height=320, margin=_MARGIN, yaxis=dict(range=[0, 1.1], tickformat=".0%"))
    return fig


def confusion_heatmap(confusion: Sequence[Sequence[int]], labels: Sequence[str] = EMOTIONS,
                      title: str = "Confusion matrix (rows: true label, share of the row)") -> go.Figure:
    """Row-normalised heatmap (share of each true class), raw counts in the hover and cell text."""
    rows = [[int(v) for v in row] for row in confusion]
    shares = [[v / max(1, sum(row)) for v in row] for row in rows]
    text = [[f"{s:.0%}<br>{v}" for s, v in zip(srow, row)] for srow, row in zip(shares, rows)]
    fig = go.Figure(go.Heatmap(
        z=shares, x=list(labels), y=list(labels), zmin=0, zmax=1, colorscale="Blues",
        text=text, texttemplate="%{text}", customdata=rows,
        hovertemplate="true %{y}, predicted %{x}: %{customdata} (%{z:.1%})<extra></extra>",
        colorbar=dict(tickformat=".0%")))
    fig.update_layout(title=title, height=430, margin=_MARGIN,
                      xaxis=dict(title="predicted", side="bottom"), yaxis=dict(title="true", autorange="reversed"))
    return fig


def training_curves(history: Sequence[Mapping], title: str = "") -> go.Figure:
    """Loss and accuracy per epoch, train and validation, side by side."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("loss", "accuracy"))
    epochs = [int(h.get("epoch", i + 1)) for i, h in enumerate(history)]
    for col, metric in ((1, "loss"), (2, "accuracy")):
        for prefix, name, dash in (("", "train", "solid"), ("val_", "validation", "dot")):
            key = prefix + metric
            points = [(e, h[key]) for e, h in zip(epochs, history) if key in h]
            if not points:
                continue
            fig.add_trace(go.Scatter(
                x=[p[0] for p in points], y=[p[1] for p in points], mode="lines+markers", name=name,
                line=dict(dash=dash, color="#1f77b4" if prefix == "" else "#ff7f0e"),
                legendgroup=name, showlegend=col == 1), row=1, col=col)
    fig.update_xaxes(title_text="epoch", dtick=1 if len(epochs) <= 20 else None)
    fig.update_yaxes(tickformat=".0%", row=1, col=2)
    fig.update_layout(title=title or None, height=330, margin=dict(l=10, r=10, t=50 if title else 30, b=10),
                      legend=dict(orientation="h", y=-0.25))
    return fig


def emotion_timeline(times: Sequence[float], scores: Sequence[Mapping[str, float]], window_s: float = 60.0,
                     title: str = "Main face, last minute") -> go.Figure:
    """One line per emotion: its probability for the main face over the last ``window_s`` seconds.

    ``times`` are seconds relative to now (negative = in the past).
    """
    fig = go.Figure()
    for emotion in EMOTIONS:
        fig.add_trace(go.Scatter(
            x=list(times), y=[float(s.get(emotion, 0.0)) for s in scores], mode="lines", name=emotion,
            line=dict(color=EMOTION_COLORS.get(emotion, "#888888"), width=2),
            hovertemplate=f"{emotion}: %{{y:.0%}}<extra></extra>"))
    fig.update_layout(title=title, height=300, margin=_MARGIN, hovermode="x unified",
                      xaxis=dict(title="seconds ago", range=[-window_s, 0]),
                      yaxis=dict(title="probability", range=[0, 1], tickformat=".0%"),
                      legend=dict(orientation="h", y=-0.3))
    return fig


def face_timelines(tracks: Mapping[int, tuple[Sequence[float], Sequence[Mapping[str, float]]]],
                   max_points: int = 1500, title: str = "Emotions of each tracked face") -> go.Figure:
    """One panel per tracked face (``{face id: (times in s, probabilities per frame)}``): its 7
    smoothed probabilities over the video. Long videos are thinned to ``max_points`` per face."""
    ids = list(tracks)
    fig = make_subplots(rows=max(1, len(ids)), cols=1, shared_xaxes=True, vertical_spacing=0.12 / max(1, len(ids)),
                        subplot_titles=[f"face #{tid}" for tid in ids] or None)
    for row, tid in enumerate(ids, start=1):
        times, scores = tracks[tid]
        step = max(1, -(-len(times) // max_points))
        for emotion in EMOTIONS:
            fig.add_trace(go.Scatter(
                x=list(times[::step]), y=[float(s.get(emotion, 0.0)) for s in scores[::step]], mode="lines",
                name=emotion, legendgroup=emotion, showlegend=row == 1,
                line=dict(color=EMOTION_COLORS.get(emotion, "#888888"), width=2),
                hovertemplate=f"face #{tid} {emotion}: %{{y:.0%}} at %{{x:.1f}} s<extra></extra>"), row=row, col=1)
    fig.update_yaxes(range=[0, 1], tickformat=".0%")
    fig.update_xaxes(title_text="seconds", row=max(1, len(ids)), col=1)
    fig.update_layout(title=title, height=130 + 200 * max(1, len(ids)), margin=_MARGIN, hovermode="x unified",
                      legend=dict(orientation="h", y=-0.5 / max(1, len(ids))))
    return fig


def robustness_bars(results: Mapping[str, Mapping], title: str = "Accuracy under camera conditions") -> go.Figure:
    """Grouped bars: clean and each camera condition (and their mean), one bar colour per classifier."""
    first = next(iter(results.values()))
    conditions = ["clean", *first["conditions"], "mean"]

    def value(r: Mapping, c: str) -> float:
        return r["clean"]["accuracy"] if c == "clean" else r["mean"] if c == "mean" else r["conditions"][c]["accuracy"]

    fig = go.Figure([go.Bar(name=name, x=conditions, y=[value(r, c) for c in conditions],
                            hovertemplate=name + ", %{x}: %{y:.1%}<extra></extra>") for name, r in results.items()])
    fig.update_layout(title=title, barmode="group", height=330, margin=_MARGIN,
                      yaxis=dict(range=[0, 1], tickformat=".0%"), legend=dict(orientation="h", y=-0.2))
    return fig
