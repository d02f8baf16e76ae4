#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""

import os
import sys


def main() -> None:
    from pipeline.engine.lifeline import die_with_parent_from_env

    die_with_parent_from_env()  # started by runsite: gone with it, even after a SIGKILL
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "nerfsite.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
