"""The installed environment: django-ninja's `ninja` package is really django-ninja's.

nerfstudio pulls in PyPI's `ninja` (the build tool), which ships a ninja/__init__.py of its
own; `make install` puts django-ninja's files back whatever order pip installed the two.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

# Runs in a fresh interpreter, so nothing this test process imported can hide the files.
CHECK = r"""
import base64, hashlib, importlib.metadata as md, json
from pathlib import Path
from django.conf import settings
settings.configure()  # django-ninja reads settings on import; none of the project's needed
from ninja import NinjaAPI  # django-ninja's; the build tool's package has no such name

dist = md.distribution("django-ninja")
changed = []
for file in dist.files:
    if file.parts[0] != "ninja" or file.hash is None:
        continue
    digest = hashlib.new(file.hash.mode, Path(file.locate()).read_bytes()).digest()
    if base64.urlsafe_b64encode(digest).rstrip(b"=").decode() != file.hash.value:
        changed.append(str(file))
try:
    tool = md.distribution("ninja")
    binary = next((str(f.locate()) for f in tool.files if f.name == "ninja"
                   and f.parts[0] != "ninja"), None)
except md.PackageNotFoundError:
    binary = None
import ninja
print(json.dumps({"api": NinjaAPI.__module__, "version": ninja.__version__,
                  "expected": dist.version, "changed": changed, "tool_binary": binary}))
"""


def test_ninja_package_files_are_django_ninjas():
    done = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    found = json.loads(done.stdout)
    assert found["api"] == "ninja.main"
    assert found["version"] == found["expected"]
    assert found["changed"] == []  # every file of django-ninja's RECORD is as it installed it
    if found["tool_binary"]:  # the build tool is installed: its binary still runs
        ran = subprocess.run([str(Path(found["tool_binary"]).resolve()), "--version"],
                             capture_output=True, text=True, timeout=30)
        assert ran.returncode == 0 and ran.stdout.strip()
