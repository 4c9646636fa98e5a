"""Train: retrain or fine-tune in the browser; the run lives in a background worker (one per server).

On a shared server the page can be locked with an admin token (FER_ADMIN_TOKEN) or switched off
(FER_TRAINING=off); see docs/deploy.md.
"""

import time

import streamlit as st

from fer.app_services import registry
from fer.app_services.archive import UnsafeArchive
from fer.app_services.jobs import MANAGER, JobBusy, TrainRequest, stage_upload
from fer.model import ARCHITECTURES
from fer.training import TrainConfig
from ui import charts, state, widgets

SOURCES = {
    "folder": "FER2013 folder on the server",
    "csv": "Upload fer2013.csv",
    "zip": "Upload a zip of class folders",
}
DEFAULTS = TrainConfig()  # the page's starting values are the command line's (python -m fer train)
BATCH_SIZES = sorted({16, 32, 64, 128, 256, DEFAULTS.batch_size})

st.title("Train a model")
cfg = state.settings()


def training_allowed() -> bool:
    """The access gate: off with FER_TRAINING=off; behind the admin token when FER_ADMIN_TOKEN is set."""
    if not cfg.training:
        st.info("Training is switched off on this server (FER_TRAINING=off): analysing photos and the live webcam "
                "work as usual. To train, run the app on your own machine, or ask the server's administrator.")
        return False
    if cfg.token_ok(st.session_state.get("_train_admin_token")):
        return True
    st.info("Training on this server needs the admin token (the administrator sets it as FER_ADMIN_TOKEN): "
            "a training keeps the server's CPU busy and can change the model every visitor uses.")
    given = st.text_input("Admin token", type="password", key="train_token")
    if not given:
        return False
    if not cfg.token_ok(given):
        time.sleep(1.0)  # slows down guessing
        st.error("That is not the admin token. Type the value of FER_ADMIN_TOKEN set on this server.")
        return False
    st.session_state["_train_admin_token"] = given
    st.rerun()


if not training_allowed():
    st.stop()
widgets.privacy_note("training")
sel = state.selection()
job = MANAGER.current()
busy = job is not None and job.running

# ---------------------------------------------------------------- data and settings

st.subheader("Data")
source = st.radio("Data source", list(SOURCES), format_func=SOURCES.get, horizontal=True, key="train_source")
upload = None
data_sub = ""
if source == "folder":
    if cfg.data_dir.exists():
        st.caption(f"Reads `{cfg.data_dir}` (set FER_DATA_DIR to change it): fer2013.csv, the Kaggle "
                   "train/ and test/ folders, or one folder per emotion.")
        data_sub = st.text_input(
            "Dataset inside the data folder", key="train_data_path", placeholder="empty: the data folder itself",
            help="A sub-folder or file of the data folder, such as `fer2013` or `fer2013.csv`. "
                 "Paths outside the data folder are refused.")
    else:
        st.warning(f"The data folder `{cfg.data_dir}` does not exist. Put FER2013 there (fer2013.csv or the "
                   "Kaggle train/ and test/ folders), point FER_DATA_DIR at it, or upload data instead.")
elif source == "csv":
    upload = st.file_uploader("fer2013.csv (columns emotion, pixels, Usage)", type=["csv"], key="train_csv")
else:
    upload = st.file_uploader(
        "Zip of class folders: angry/, disgust/, fear/, happy/, sad/, surprise/, neutral/ holding face images "
        "(any size; your own labelled faces work for fine-tuning)", type=["zip"], key="train_zip")

st.subheader("Settings")
c1, c2 = st.columns(2)
start_from = c1.radio("Start from", ["scratch", "finetune"], horizontal=True, key="train_start_from",
                      format_func={"scratch": "Scratch", "finetune": "Fine-tune the active model"}.get)
finetune_card = sel.entry.card if (start_from == "finetune" and sel.entry is not None) else None
archs = list(ARCHITECTURES)
if finetune_card is not None and finetune_card.architecture in archs:
    arch = c2.selectbox("Architecture", archs, index=archs.index(finetune_card.architecture), disabled=True,
                        key="train_arch_ft", help="Fine-tuning keeps the active model's architecture.")
else:
    arch = c2.selectbox("Architecture", archs, index=archs.index(DEFAULTS.arch), key="train_arch",
                        format_func=lambda a: f"{a}: {ARCHITECTURES[a][1]}")
c3, c4, c5, c6 = st.columns(4)
epochs = c3.number_input("Epochs", min_value=1, max_value=200, value=2, step=1, key="train_epochs",
                         help="A full FER2013 run needs about 30-40 epochs (hours on a CPU).")
batch_size = c4.selectbox("Batch size", BATCH_SIZES, index=BATCH_SIZES.index(DEFAULTS.batch_size), key="train_batch")
lr = c5.number_input("Learning rate", min_value=1e-5, max_value=1.0, value=DEFAULTS.lr, step=1e-4, format="%.5f",
                     key="train_lr", help="Peak of the warm-up + cosine schedule; about 3e-4 for fine-tuning.")
augment = c6.toggle("Augmentation", value=DEFAULTS.augment, key="train_augment",
                    help="Random flips, rotations, zoom, lighting, blur and occlusion while training.")
q1, q2 = st.columns([1, 3])
quick = q1.toggle("Quick run", value=True, key="train_quick",
                  help="Train on a random subset, so a demo finishes in about a minute on a CPU.")
quick_n = q2.number_input("Training images in the quick run", min_value=14, max_value=100_000, value=1000,
                          step=100, key="train_quick_n", disabled=not quick)


def start_training() -> None:
    """Validate, stage the data and start the background job (messages go to the page)."""
    if start_from == "finetune" and (sel.entry is None or sel.entry.card is None):
        st.error("There is no usable active model to fine-tune; pick one in the sidebar or start from scratch.")
        return
    config = TrainConfig(arch=arch, epochs=int(epochs), batch_size=int(batch_size), lr=float(lr),
                         augment=bool(augment), warmup_epochs=min(2.0, int(epochs) / 5))
    try:
        config.validate()
    except ValueError as exc:
        st.error(str(exc))
        return
    cleanup = None
    if source == "folder":
        if not cfg.data_dir.exists():
            st.error(f"The data folder {cfg.data_dir} does not exist (FER_DATA_DIR).")
            return
        try:
            data_path = cfg.dataset_path(data_sub)
        except ValueError as exc:
            st.error(f"Cannot use this dataset path: {exc}")
            return
        label, use_cache = f"data folder {data_path}" if data_sub.strip() else f"FER2013 folder {data_path}", True
    else:
        if upload is None:
            st.error("Choose a file to upload first.")
            return
        try:
            with st.spinner(f"Unpacking {upload.name}…"):
                data_path, cleanup = stage_upload(source, upload.getvalue(), cfg.work_dir,
                                                  max_bytes=cfg.max_zip_mb * 1_000_000, max_files=cfg.max_zip_files)
        except (UnsafeArchive, ValueError, OSError) as exc:
            st.error(f"Cannot use {upload.name}: {exc}")
            return
        label, use_cache = f"upload {upload.name}", False
    request = TrainRequest(
        data_path=data_path, data_label=label, config=config, quick_n=int(quick_n) if quick else None,
        init_model=sel.entry.path if start_from == "finetune" else None, use_cache=use_cache, cleanup=cleanup)
    try:
        MANAGER.start(request, cfg.work_dir / "runs")
    except JobBusy as exc:
        if cleanup is not None:
            import shutil

            shutil.rmtree(cleanup, ignore_errors=True)
        st.warning(f"Please wait: {exc}.")
        return
    st.rerun()


if st.button("Start training", type="primary", disabled=busy, key="train_start", icon=":material/play_arrow:",
             help="One training at a time per server." if not busy else "A training is already running."):
    start_training()
if busy:
    st.info("A training is running on this server (started from this or another session); "
            "a new one can start when it has finished or been cancelled.")

# ---------------------------------------------------------------- the job: progress, then results


def _use(job_, snap) -> None:
    path = _save(job_, snap)
    if path is not None:
        registry.ACTIVE.set(path)
        st.session_state["_train_notice"] = f"Every page and every session now uses {path.name}."


def _save(job_, snap):
    if snap["saved_path"] is not None:
        return snap["saved_path"]
    try:
        path = registry.save_as_new(snap["result_path"], cfg.models_dir, cfg.default_model,
                                    note=f"trained in the app on {snap['data_label']}")
    except (ValueError, OSError) as exc:
        st.session_state["_train_notice"] = f"error: could not save the model: {exc}"
        return None
    job_.mark_saved(path)
    st.session_state["_train_notice"] = f"Saved as {path} with its model card."
    return path


@st.fragment(run_every=1.0 if busy else None)
def job_panel(was_running: bool) -> None:
    current = MANAGER.current()
    if current is None:
        return
    snap = current.snapshot()
    if was_running and not snap["running"]:
        st.rerun()  # finished: a full rerun re-enables Start and stops the polling
    cfg_ = snap["config"]
    st.subheader(f"Training #{snap['id']}")
    st.caption(f"{snap['data_label']} · {cfg_['arch']} · {cfg_['epochs']} epoch(s) · batch {cfg_['batch_size']} · "
               f"lr {cfg_['lr']:g} · augmentation {'on' if cfg_['augment'] else 'off'}"
               f"{' · quick run of ' + str(snap['quick_n']) + ' images' if snap['quick_n'] else ''}"
               f"{' · fine-tuning ' + snap['init_model'] if snap['init_model'] else ''}")
    if snap["running"]:
        if snap["state"] in ("queued", "loading"):
            st.progress(0.0, text=f"{snap['message']}…")
        else:
            st.progress(snap["progress"], text=snap["message"])
        m1, m2, m3, m4 = st.columns(4)
        m1.metric("Elapsed", widgets.duration(snap["elapsed_s"]))
        m2.metric("Remaining (estimate)", widgets.duration(snap["remaining_s"]))
        m3.metric("Batch loss", f"{snap['logs']['loss']:.3f}" if "loss" in snap["logs"] else "–")
        m4.metric("Batch accuracy", f"{snap['logs']['accuracy']:.1%}" if "accuracy" in snap["logs"] else "–")
        st.button("Cancel", key="train_cancel", on_click=current.cancel, icon=":material/stop:",
                  disabled=snap["cancel_requested"],
                  help="Stops within one batch and keeps the best epoch so far.")
        if snap["cancel_requested"]:
            st.caption(snap["message"])
    elif snap["state"] == "failed":
        st.error(f"Training failed: {snap['error']}")
    elif snap["state"] == "cancelled" and snap["card"] is None:
        st.warning(f"Cancelled: {snap['message']}")
    else:
        (st.success if snap["state"] == "done" else st.warning)(
            f"Training {'finished' if snap['state'] == 'done' else 'cancelled'}: {snap['message']} "
            f"({widgets.duration(snap['elapsed_s'])}).")

    if snap["history"]:
        st.plotly_chart(charts.training_curves(snap["history"], title="Loss and accuracy per epoch"),
                        key="train_curves")
    elif snap["running"]:
        st.caption("The curves appear when the first epoch ends.")

    card = snap["card"]
    if card is not None and not snap["running"]:
        split, metrics = next(iter(card.metrics.items()))
        st.subheader("Evaluation of the best epoch")
        widgets.evaluation(metrics, key="train_eval", title=f"on the {split.replace('_', ' ')} split")
        if snap["data"].get("notes"):
            st.caption(f"Data notes: {snap['data']['notes']}")
        b1, b2, _ = st.columns([1, 1, 2])
        if b1.button("Save as new model", key="train_save", disabled=snap["saved_path"] is not None,
                     icon=":material/save:"):
            _save(current, snap)
            st.rerun()
        if b2.button("Use this model", key="train_use", type="primary", icon=":material/check_circle:"):
            _use(current, snap)
            st.rerun()
        notice = st.session_state.pop("_train_notice", None)
        if notice:
            (st.error if notice.startswith("error:") else st.success)(notice.removeprefix("error: "))
        elif snap["saved_path"] is not None:
            st.caption(f"Saved as `{snap['saved_path']}`.")


job_panel(busy)
