"""VideoPrune's Gradio demo: compare pruning methods side by side, and run workflows headless.

    python demo_app.py [--model builtin|PATH|HUB_ID] [--host 127.0.0.1] [--port 7860]

* **Compare**: a video (a bundled sample clip or an upload), a question, methods (controls
  generated from the method registry) and a retention. Every run goes through the node graph:
  the demo builds a ComfyUI workflow (Load Video LLM → Load Video → stage → Answer → Kept-Token
  Overlay → Report) and the headless runtime runs it. Shows per method the answer, TTFT, prefill
  time, speedup against the unpruned reference (always run), kept tokens and FLOPs, the kept
  tokens on every frame, a latency chart and a retention-vs-time scatter, and offers the
  workflow JSON that reproduces the run.
* **Workflow**: pick an example workflow, upload one, or take the Compare settings; see the
  graph, its validation errors, run it, see its outputs, download it.

The model is loaded once at start-up and shared by every request; requests queue (``--concurrency``).
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

log = logging.getLogger("videoprune.demo")

DEFAULT_RETENTION = 0.25
DEFAULT_FRAMES = 16
DEFAULT_ANSWER_TOKENS = 8


def _gradio():
    try:
        import gradio as gr
    except ImportError:
        raise SystemExit("gradio is not installed: run `python install.py --standalone` "
                         "(or pip install -r requirements-demo.txt)") from None
    return gr


def build_ui(service) -> Any:
    """The Blocks app around a ``demo.service.DemoService``."""
    gr = _gradio()
    from demo import compare as cmp
    from demo.controls import controls_for, default_methods, method_choices, selectable_methods
    from demo.samples import choice_label, is_sample
    from nodes.videos import VIDEO_EXTENSIONS
    from demo.service import DEFAULT_REPEATS, MAX_FRAMES, MAX_REPEATS, UPLOAD, DemoError
    from demo.service import frame_view as service_frame_view
    from demo.viewer import heat_for as viewer_heat
    from demo.workflow_builder import workflow_json

    clips = service.sample_clips(DEFAULT_FRAMES)
    info = service.adapter.info
    hidden = _no_api(gr)
    specs = selectable_methods()

    def guarded(fn: Callable, n_out: int, status_index: int | None = 0, keep: bool = False) -> Callable:
        """Runs ``fn``; a user error becomes a warning toast plus a message in the status box
        (other outputs cleared, or left as they are with ``keep``; no status box: the toast only),
        an unexpected one is logged on the server and reported in one line."""
        def wrapper(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except DemoError as e:
                msg = str(e)
            except Exception as e:  # never a traceback in the page; the server log has it
                log.exception("demo request failed")
                first = (str(e).strip().splitlines() or [""])[0]
                msg = f"internal error ({type(e).__name__}): {first}"
            gr.Warning(msg)
            out = [gr.update() if keep else None] * n_out
            if status_index is not None:
                out[status_index] = gr.update(value=f"**Error:** {msg}", visible=True) if keep else f"**Error:** {msg}"
            return tuple(out) if n_out > 1 else out[0]
        wrapper.__name__ = getattr(fn, "__name__", "handler")
        return wrapper

    with gr.Blocks(title="VideoPrune demo", **_style_kwargs(gr, "blocks")) as app:
        gr.Markdown(
            "# VideoPrune: faster Video LLMs by pruning visual tokens\n"
            f"Model **{service.model}** ({info.backbone}, {info.num_layers} layers). Every run below is a "
            "node graph executed by the headless runtime: the same workflow JSON runs in ComfyUI.")

        # ------------------------------------------------------------ Compare
        with gr.Tab("Compare", id="compare"):
            uploaded = gr.State(None)       # the staged upload (a file in the input folder), kept across sources
            sample_question = gr.State(clips[0].question)   # what the last sample put into the question box
            with gr.Row():
                with gr.Column(scale=2, min_width=340):
                    choices = [(choice_label(c), c.name) for c in clips] + [("uploaded video", UPLOAD)]
                    source = gr.Dropdown(choices=choices,
                                         value=clips[0].name, label="Video", elem_id="video-source",
                                         info="A synthetic clip the built-in model knows (drawn for the chosen "
                                              "number of frames; its question follows), or your own upload.")
                    # the preview shows only files written here (VP8 WebM, which every browser plays); uploads
                    # arrive through their own box, so an unplayable upload is never put in a <video>
                    video = gr.Video(value=str(clips[0].path), label="Preview", interactive=False,
                                     elem_id="video", height=220)
                    upload = gr.File(label="Upload a video (it becomes the source)", type="filepath",
                                     file_types=list(VIDEO_EXTENSIONS), elem_id="video-upload", height=140)
                    upload_note = gr.Markdown(visible=False, elem_id="upload-warning")
                    question = gr.Textbox(value=clips[0].question, label="Question", lines=2, elem_id="question",
                                          placeholder="Ask about the video, e.g. what shape appears first ?")
                    methods = gr.CheckboxGroup(choices=method_choices(), value=default_methods(), elem_id="methods",
                                               label="Methods (the unpruned reference always runs)")
                    retention = gr.Slider(0.01, 1.0, value=DEFAULT_RETENTION, step=0.01, elem_id="retention",
                                          label="Retention: kept / original visual tokens (methods with a retention)")
                    with gr.Row():
                        frames = gr.Slider(1, MAX_FRAMES, value=DEFAULT_FRAMES, step=1, label="Frames",
                                           elem_id="frames")
                        answer_len = gr.Slider(1, 64, value=DEFAULT_ANSWER_TOKENS, step=1, elem_id="answer-length",
                                               label="Answer length (tokens)")
                    repeats = gr.Slider(1, MAX_REPEATS, value=DEFAULT_REPEATS, step=1, elem_id="repeats",
                                        label="Timing repeats: timings are the median of this many runs "
                                              "(spread shown; the answer is the first run's)")
                    matched = gr.Checkbox(value=False, elem_id="matched",
                                          label="Matched budget: every method at the same equivalent retention "
                                                "(its compute knob solved on this input) instead of the same "
                                                "kept-token share")
                    positions = gr.Radio(["original", "compact"], value="original", elem_id="positions",
                                         label="Positions of kept tokens: original (as in the unpruned prompt) or "
                                               "compact (re-encoded as the new input, as the papers' own code)")
                    param_keys: list[str] = []
                    param_inputs: list[Any] = []
                    with gr.Accordion("Method parameters (defaults from the papers)", open=False):
                        for spec in specs:
                            ctrls = controls_for(spec, info.num_layers)
                            if not ctrls:
                                continue
                            with gr.Accordion(f"{spec.title}: {spec.paper}", open=False):
                                for c in ctrls:
                                    param_keys.append(c.key)
                                    param_inputs.append(_component(gr, c))
                with gr.Column(scale=3, min_width=340):
                    # the Run button and its status at the top of the results: above the fold on a laptop,
                    # and right before the results once the columns stack on a phone
                    with gr.Row(elem_id="run-row"):
                        run_btn = gr.Button("Run comparison", variant="primary", elem_id="run-compare", scale=3)
                        stop_btn = gr.Button("Stop", variant="stop", elem_id="stop-compare", scale=1)
                    status = gr.Markdown(elem_id="compare-status")
                    gr.Markdown(speed_banner(info), elem_id="speed-banner")
                    table = gr.Dataframe(headers=cmp.TABLE_HEADERS, label="Results", elem_id="results",
                                         interactive=False, wrap=True,
                                         column_widths=[f"{cmp.COLUMN_WIDTHS[h]}px" for h in cmp.TABLE_HEADERS])
                    view_state = gr.State(None)     # the last run's viewer (frames, kept ids per run)
                    outcome_state = gr.State(None)  # the last run, until its pictures are drawn
                    gr.Markdown("**Frame viewer**: one frame in every run at full size; pruned cells dimmed, every "
                                "kept cell outlined. Move the slider to step through the frames.")
                    frame_slider = gr.Slider(0, DEFAULT_FRAMES - 1, value=0, step=1, label="Frame (0-based)",
                                             elem_id="frame-slider")
                    with gr.Row():
                        heat_on = gr.Checkbox(value=False, elem_id="score-heat", scale=3,
                                              label="Score heatmap: tint every token by the score its method ranks "
                                                    "it with (FastV/ShaRP attention, SharpV importance, HieraVid "
                                                    "relevance; dark low, yellow high; one extra 1-token run per "
                                                    "method)")
                        posc = gr.Radio(["after PosC", "before PosC"], value="after PosC", elem_id="sharp-posc",
                                        label="ShaRP scores", scale=1)
                    scores_state = gr.State(None)   # the last run's recorded scores, recorded once on demand
                    # two full-size panels a row in this column (one on a phone, see CSS); each panel carries
                    # its own caption band, repeated as text below (the gallery's captions would cover the frame)
                    frame_view = gr.Gallery(label="This frame in every run", columns=2, height="auto",
                                            object_fit="contain", elem_id="frame-view", show_label=False)
                    frame_caption = gr.Markdown(elem_id="frame-caption")
                    timeline = gr.Image(label="Kept share per frame (segment starts dashed, this frame grey)",
                                        type="numpy", elem_id="timeline")
                    gr.Markdown("**All frames** (overview): a row per method, each frame's retention as a bar "
                                "along its bottom.")
                    overlays = gr.Image(label="Kept tokens per frame", type="numpy", elem_id="overlays",
                                        show_label=False)
                    with gr.Row():
                        latency = gr.Image(label="Latency", elem_id="latency-chart", type="numpy")
                        scatter = gr.Image(label="Retention vs prefill time", elem_id="scatter-chart", type="numpy")
                    pareto = gr.Image(label="Pareto view: benchmark accuracy vs equivalent retention, this run's "
                                            "points as stars", type="numpy", elem_id="pareto-chart")
                    workflow_file = gr.File(label="This run as a ComfyUI workflow (UI format)",
                                            elem_id="compare-workflow")
                    with gr.Accordion("Report node output", open=False):
                        report = gr.Markdown(elem_id="compare-report")

        compare_inputs = [source, uploaded, question, methods, retention, frames, answer_len, positions, repeats,
                          matched, *param_inputs]

        def settings_from(src, upload, q, chosen, ret, n_frames, n_tokens, pos, n_repeats, match, *values):
            return service.settings(src, upload, q, chosen or [], ret, n_frames, n_tokens,
                                    dict(zip(param_keys, values)), positions=pos, repeats=n_repeats,
                                    matched=bool(match))

        def on_compare(*args, progress=gr.Progress()):
            """The runs: status, table, workflow, report at once; the pictures follow (``on_pictures``)."""
            s = settings_from(*args)
            out = service.compare(s, lambda frac, desc: progress(frac, desc=desc))
            last = out.viewer.num_frames - 1
            return (out.status(), out.table, str(out.workflow_path), out.report_md, out.viewer,
                    gr.update(maximum=max(last, 1), value=0, interactive=last > 0), out)

        def on_pictures(out, heat, sharp_scores):
            """The finished run's pictures (sheet, charts, viewer at frame 0, Pareto); none after a failed run."""
            if out is None:
                return None, None, None, [], "", None, None, None
            return (out.overlays, out.latency, out.scatter, *on_frame(out.viewer, 0, heat, sharp_scores, None),
                    out.pareto)

        def on_frame(vw, index, heat, sharp_scores, scores):
            """The viewer at ``index``; with the heatmap on, the run's scores (recorded on first use)."""
            if heat and scores is None:
                scores = service.record_scores(vw)
            tint = viewer_heat(scores, after_posc=sharp_scores != "before PosC") if heat else None
            panels, chart = service_frame_view(vw, index, tint)
            return [img for img, _ in panels], "  \n".join(text for _, text in panels), chart, scores

        # light handlers: never queued behind a running comparison
        light = {"show_progress": "hidden", "concurrency_limit": None, **hidden}
        # a new run starts with a clean status line: an old error never stands beside new results
        # three steps: a clean status; the runs (table and status the moment they end); then the pictures
        run_btn.click(lambda: "Running…", None, status, queue=False, **light).then(
            guarded(on_compare, 7), compare_inputs,
            [status, table, workflow_file, report, view_state, frame_slider, outcome_state], api_name="compare_ui"
        ).then(guarded(on_pictures, 8, None, keep=True), [outcome_state, heat_on, posc],
               [overlays, latency, scatter, frame_view, frame_caption, timeline, scores_state, pareto], **hidden)
        # the user's moves only (a run setting the slider redraws through on_compare); the last position wins
        viewer_io = ([view_state, frame_slider, heat_on, posc, scores_state],
                     [frame_view, frame_caption, timeline, scores_state])
        frame_slider.input(guarded(on_frame, 4, None, keep=True), *viewer_io, trigger_mode="always_last", **light)
        posc.input(guarded(on_frame, 4, None, keep=True), *viewer_io, trigger_mode="always_last", **light)
        # turning the heatmap on may record scores (model runs): queued like a run, progress on the viewer
        heat_on.input(guarded(on_frame, 4, None, keep=True), *viewer_io, trigger_mode="always_last",
                      show_progress="minimal", **hidden)

        def on_source(src, n_frames, current, q, last_q, staged):
            """A sample: its preview and question. "uploaded video": the upload's preview (none before an
            upload), the sample's question cleared (a question the user typed stays), the warning shown."""
            if not is_sample(str(src or "")):
                preview, note = service.upload_preview(staged) if staged else (None, service.upload_warning())
                same = preview is not None and current and Path(current).name == preview.name
                cleared = "" if (q or "").strip() == (last_q or "").strip() else gr.update()
                return (gr.update() if same else (str(preview) if preview else None), cleared, gr.update(),
                        gr.update(value=note, visible=bool(note)))
            c = service.sample_clip(src, int(n_frames))
            return str(c.path), c.question, c.question, gr.update(visible=False)

        def on_upload(path, q, last_q):
            """A new upload: staged, previewed in a format the browser plays, the source switched to it."""
            if not path:
                return gr.update(), gr.update(), None, gr.update(), gr.update()
            staged = service.stage_upload(path)
            preview, note = service.upload_preview(staged)
            cleared = "" if (q or "").strip() == (last_q or "").strip() else gr.update()
            return (str(preview), UPLOAD, str(service.input_dir / staged), cleared,
                    gr.update(value=note, visible=bool(note)))

        # one at a time, in order, so a slow earlier update never overwrites a later one's question
        preview = {**light, "concurrency_limit": 1, "concurrency_id": "sample-preview"}
        source_io = ([source, frames, video, question, sample_question, uploaded],
                     [video, question, sample_question, upload_note])
        source.change(guarded(on_source, 4, 3, keep=True), *source_io, **preview)
        frames.change(guarded(on_source, 4, 3, keep=True), *source_io, trigger_mode="always_last", **preview)
        upload.upload(guarded(on_upload, 5, 4, keep=True), [upload, question, sample_question],
                      [video, source, uploaded, question, upload_note], **preview)

        def on_clear_upload(src):
            """The upload box's cross: the upload forgotten; shown as the source, its preview goes too."""
            if is_sample(str(src or "")):
                return None, gr.update(), gr.update()
            note = service.upload_warning()
            return None, None, gr.update(value=note, visible=bool(note))

        upload.clear(guarded(on_clear_upload, 3, 2, keep=True), source, [uploaded, video, upload_note], **light)

        # ------------------------------------------------------------ Workflow
        with gr.Tab("Workflow", id="workflow"):
            with gr.Row():
                with gr.Column(scale=2, min_width=340):
                    examples = service.example_workflows()
                    example = gr.Dropdown(choices=examples, value=None, label="Example workflow",
                                          elem_id="example-workflow",
                                          info=f"{len(examples)} in example_workflows/" if examples else
                                          "example_workflows/ is empty")
                    wf_upload = gr.File(label="…or upload a workflow (.json)", file_types=[".json"], type="filepath",
                                        elem_id="workflow-upload")
                    from_compare = gr.Button("Take the Compare tab's settings", elem_id="workflow-from-compare")
                    use_demo_model = gr.Checkbox(value=True, elem_id="workflow-use-demo-model",
                                                 label=f"Run Load Video LLM nodes on this demo's model "
                                                       f"({service.model})",
                                                 info="Off: each node loads the model the workflow names.")
                    wf_text = gr.Code(language="json", label="Workflow JSON (UI or API format; editable)",
                                      lines=16, max_lines=24, elem_id="workflow-json")
                    with gr.Row():
                        check_btn = gr.Button("Show graph / validate", elem_id="workflow-check")
                        run_wf = gr.Button("Run workflow", variant="primary", elem_id="workflow-run")
                        stop_wf = gr.Button("Stop", variant="stop", elem_id="stop-workflow")
                    wf_download = gr.File(label="Download this workflow", elem_id="workflow-download")
                with gr.Column(scale=3, min_width=480):
                    wf_status = gr.Markdown(elem_id="workflow-status")
                    wf_notes = gr.Markdown(elem_id="workflow-notes")
                    picture = gr.Image(label="Graph", type="numpy", elem_id="workflow-graph")
                    wf_errors = gr.Markdown(elem_id="workflow-errors")
                    wf_answers = gr.Markdown(elem_id="workflow-answers")
                    # contain, not cover: a lone report chart or a wide retention strip is shown whole
                    wf_images = gr.Gallery(label="Output images", columns=4, height="auto", object_fit="contain",
                                           elem_id="workflow-images")
                    wf_report = gr.Markdown(elem_id="workflow-report")

        def show(text):
            out = service.inspect_workflow(text)
            return (("" if out.ok else "**Invalid:** ") + out.message, out.notes_md, out.picture, out.errors_md,
                    str(service.save_workflow_text(text)))

        def show_example(name):
            if not name:
                return gr.update(), None, "", None, "", None
            text = service.read_example(name)
            return (text, *show(text))

        def show_upload(path):
            if not path:
                return gr.update(), None, "", None, "", None
            text = service.read_workflow_file(path)
            return (text, *show(text))

        def take_compare(*args):
            s = settings_from(*args)
            _, ui, _ = service.compare_workflow(s)
            text = workflow_json(ui)
            return (text, *show(text))

        def run_workflow(text, demo_model, progress=gr.Progress()):
            out = service.run_workflow(text, lambda frac, desc: progress(frac, desc=desc), bool(demo_model))
            status_md = out.message if out.ok else f"**Error:** {out.message}"
            return (status_md, out.notes_md, out.picture, out.errors_md, out.answers_md, out.images, out.report_md,
                    str(service.save_workflow_text(text)))

        shown = [wf_status, wf_notes, picture, wf_errors, wf_download]
        example.change(guarded(show_example, 6, 1), example, [wf_text, *shown], concurrency_limit=None, **hidden)
        wf_upload.upload(guarded(show_upload, 6, 1), wf_upload, [wf_text, *shown], concurrency_limit=None, **hidden)
        from_compare.click(guarded(take_compare, 6, 1), compare_inputs, [wf_text, *shown], concurrency_limit=None,
                           **hidden)
        check_btn.click(guarded(show, 5, 0), wf_text, shown, concurrency_limit=None, **hidden)
        run_wf.click(lambda: "Running…", None, wf_status, queue=False, **light).then(
            guarded(run_workflow, 8, 0), [wf_text, use_demo_model],
            [wf_status, wf_notes, picture, wf_errors, wf_answers, wf_images, wf_report, wf_download],
            api_name="run_workflow_ui")
        # the runtime stops between nodes, layers and decode steps; the request then reports "stopped"
        for btn in (stop_btn, stop_wf):
            btn.click(service.interrupt, None, None, concurrency_limit=None, **hidden)

        # ------------------------------------------------------------ plain API (gradio_client)
        def compare_api(video: str, question: str, methods: list[str] | str, retention: float | str = DEFAULT_RETENTION,
                        frames: int | str = DEFAULT_FRAMES, max_new_tokens: int | str = DEFAULT_ANSWER_TOKENS,
                        repeats: int | str = DEFAULT_REPEATS, matched: bool = False) -> dict:
            """Compare methods on a sample clip (``sample-N``); returns the rows and the workflow.
            ``methods``: a list of registry names or one comma-separated string; each runs with its
            defaults on the loaded model; ``repeats``: timings are the median of this many runs;
            ``matched``: every method solved to equivalent retention ``retention`` (matched budget)."""
            try:
                s = service.api_settings(video, question, methods, retention, frames, max_new_tokens, repeats,
                                         matched)
                return service.compare(s).to_json()
            except DemoError as e:
                raise gr.Error(str(e)) from None

        gr.api(compare_api, api_name="compare")
    return app


def speed_banner(info) -> str:
    """One line above the results: what the measured and the projected speedups mean on this model."""
    from demo.projection import real_scale_preset
    preset = real_scale_preset(info.backbone).name
    small = info.num_layers < 12 or info.hidden_size < 1024
    measured = (f"On this {info.num_layers}-layer, {info.hidden_size}-wide model prefill is call overhead, "
                "not arithmetic, so measured speedups are small or below 1×; " if small else
                "Measured speedups are this machine's wall clock; ")
    return (f"**Speed:** {measured}**projected 7B speedup** is the analytic prefill-FLOPs ratio of the same plan on "
            f"{preset} (196 tokens per frame), what a real checkpoint gains.")


CSS = """
/* results headers break between words only (gradio breaks them anywhere: "answe|r");
   the column widths (demo.compare.COLUMN_WIDTHS) fit each header's longest word */
#results th .header, #results th .header.wrap { word-break: normal !important; overflow-wrap: normal !important;
  hyphens: none; }
#compare-status:empty { display: none; }
/* report tables (Markdown): one line a row, scrolled sideways, instead of words broken ("k|ept", "unpru|ned") */
#workflow-report table, #compare-report table, #workflow-answers table { display: block; overflow-x: auto; }
#workflow-report th, #workflow-report td, #compare-report th, #compare-report td, #workflow-answers th,
#workflow-answers td { white-space: nowrap; word-break: normal !important; overflow-wrap: normal !important; }
#upload-warning { background: #fff4e0; border-left: 4px solid #f0a000; padding: 6px 10px; border-radius: 4px; }
/* the frame viewer shows every run's panel at once: no inner scroll box (gradio caps a gallery's height) */
#frame-view .grid-wrap { max-height: none !important; height: auto !important; overflow-y: visible !important; }
/* a phone: the frame viewer's panels one under the other, each as wide as the screen */
@media (max-width: 640px) { #frame-view .grid-container { grid-template-columns: 1fr !important; } }
"""


def _style_kwargs(gr, where: str) -> dict:
    """The page's CSS where this gradio takes it: ``gr.Blocks`` up to 5, ``launch`` from 6."""
    major = int(str(gr.__version__).split(".")[0])
    return {"css": CSS} if (where == "launch") == (major >= 6) else {}


def _no_api(gr) -> dict:
    """Event kwargs keeping a UI-only handler out of the documented API (gradio 5 and 6 spell it differently)."""
    major = int(str(gr.__version__).split(".")[0])
    return {"api_visibility": "undocumented"} if major >= 6 else {"show_api": False}


def _component(gr, c) -> Any:
    """The gradio component for one generated control (see ``demo.controls.Control``)."""
    eid = f"param-{c.method}-{c.name}"
    if c.kind == "checkbox":
        return gr.Checkbox(value=c.value, label=c.label, info=c.info, elem_id=eid)
    if c.kind == "dropdown":
        return gr.Dropdown(choices=c.options["choices"], value=c.value, label=c.label, info=c.info, elem_id=eid)
    if c.kind == "slider":
        return gr.Slider(c.options["minimum"], c.options["maximum"], value=c.value, step=c.options["step"],
                         label=c.label, info=c.info, elem_id=eid)
    if c.kind == "number":
        kw = {k: c.options[k] for k in ("minimum", "maximum", "step", "precision") if k in c.options}
        return gr.Number(value=c.value, label=c.label, info=c.info, elem_id=eid, **kw)
    return gr.Textbox(value=str(c.value), label=c.label, info=c.info, elem_id=eid)


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description="VideoPrune Gradio demo")
    ap.add_argument("--model", default="builtin",
                    help="builtin (default), a model folder, or a hub id (downloaded once into models/LLM)")
    ap.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    ap.add_argument("--port", type=int, default=7860)
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--dtype", default="auto", choices=["auto", "fp32", "bf16", "fp16"])
    ap.add_argument("--attn", "--attention", dest="attn", default="auto", choices=["auto", "sdpa", "flash_attention_2", "eager"])
    ap.add_argument("--cache-dir", default=None,
                    help="sample clips, uploads, previews and workflows (default ~/.cache/videoprune/demo)")
    ap.add_argument("--concurrency", type=int, default=1,
                    help="requests handled at once (runs themselves are serialised by the runtime)")
    ap.add_argument("--no-warmup", action="store_true", help="skip the tiny warm-up run at start-up")
    ap.add_argument("--allow-downloads", action="store_true",
                    help="let workflows run in the Workflow tab download hub ids missing from models/LLM "
                         "(off: a visitor cannot fill this machine's disk; --model itself always may)")
    return ap.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    gr = _gradio()
    from demo.service import DemoService
    from pruning_core.errors import VideoPruneError
    try:
        service = DemoService(args.model, args.cache_dir, args.device, args.dtype, args.attn,
                              allow_downloads=args.allow_downloads)
        print(f"loading model: {service.load_model()}", flush=True)
        if not args.no_warmup:
            service.warm_up()
        app = build_ui(service)
    except VideoPruneError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    app.queue(default_concurrency_limit=max(1, args.concurrency))
    print(f"VideoPrune demo: http://{args.host}:{args.port} (model {service.model})", flush=True)
    app.launch(server_name=args.host, server_port=args.port, allowed_paths=[str(service.cache_dir)],
               show_error=False, quiet=True, **_style_kwargs(gr, "launch"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
