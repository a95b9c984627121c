"""seglab command-line interface: parses arguments and calls library functions, nothing more."""

from __future__ import annotations

import importlib
import os
import sys

import typer
from rich.markup import escape

from seglab import __version__
from seglab.cli.app import app, err_console
from seglab.errors import SeglabError

# Each module registers its commands on `app` / `data_app` when imported.
_COMMAND_MODULES = ("seglab.cli.models_cmd", "seglab.cli.data_cmd", "seglab.cli.data_split_cmd", "seglab.cli.train_cmd",
                    "seglab.cli.evaluate_cmd", "seglab.cli.predict_cmd", "seglab.cli.export_cmd",
                    "seglab.cli.ablate_cmd", "seglab.cli.inspect_cmd",
                    "seglab.cli.plan_cmd", "seglab.cli.panoptic_cmd", "seglab.cli.panoptic_data_cmd",
                    "seglab.cli.sam_cmd", "seglab.cli.review_cmd", "seglab.cli.bench_cmd",
                    "seglab.cli.serve_cmd")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"seglab {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print version."),
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks for errors."),
) -> None:
    """Image segmentation toolkit: check data, train, evaluate, predict, export."""
    if debug:
        os.environ["SEGLAB_DEBUG"] = "1"


def _register() -> None:
    for name in _COMMAND_MODULES:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name != name:  # a real missing dependency, not a command module not written yet
                raise


def _print_error(message: str) -> None:
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; user errors print one message and exit 2 (``--debug`` shows the traceback)."""
    _register()
    args = sys.argv[1:] if argv is None else argv
    if "--debug" in args:
        os.environ["SEGLAB_DEBUG"] = "1"
    try:
        rc = app(args=args, standalone_mode=False)
    except SeglabError as e:
        if os.environ.get("SEGLAB_DEBUG"):
            raise
        _print_error(str(e))
        return e.exit_code
    except typer.Exit as e:
        return e.exit_code
    except KeyboardInterrupt:
        err_console.print("interrupted")
        return 130
    except OSError as e:  # last resort: a file-system failure not met where the file was written
        if os.environ.get("SEGLAB_DEBUG") or e.filename is None:
            raise
        from seglab.fileio import describe_os_error

        _print_error(f"{describe_os_error(e)}. Run with --debug for the traceback.")
        return SeglabError.exit_code
    except Exception as e:  # usage errors (typer bundles its own click) arrive here in non-standalone mode
        if hasattr(e, "show") and isinstance(getattr(e, "exit_code", None), int):
            e.show()
            return 2
        if type(e).__name__ == "Abort":
            return 130
        raise
    return rc if isinstance(rc, int) else 0
