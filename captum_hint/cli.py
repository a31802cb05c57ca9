"""The ``captum-hint`` command line."""

from __future__ import annotations

import argparse
from typing import List, Optional


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="captum-hint",
        description="HINT: which hidden neurons of a vision network stand for which concepts.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser(
        "demo",
        help="run HINT on the default model and the embedded data "
        "(prints the plan until the main job lands)",
    )
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "demo":
        print(
            "captum-hint demo: the main job (default model EfficientNet-Lite0, "
            "stamp scenes, localization benchmark, report) is not built yet.\n"
            "Available now: captum_hint.attr (five layer saliency methods), "
            "captum_hint.ConceptScore and captum_hint.responsible_regions; "
            "see README.md."
        )
    return 0
