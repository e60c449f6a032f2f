#!/usr/bin/env bash
# Set up vjepa on a fresh Debian machine (run as root) or any machine with Python 3.10+:
# system packages if missing, a virtual environment in .venv, and the package with its test tools.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! python3 -c "import venv, ensurepip" 2>/dev/null; then
    if command -v apt-get >/dev/null; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3 python3-venv python3-pip
    else
        echo "setup: python3 with the venv module is required (Debian: apt-get install python3-venv)" >&2
        exit 1
    fi
fi

# LaTeX for the report (report/vjepa.pdf) and poppler-utils (pdftotext, used by the tests).
if ! command -v latexmk >/dev/null || ! command -v pdftotext >/dev/null; then
    if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            texlive-latex-base texlive-latex-recommended latexmk poppler-utils >/dev/null
    else
        echo "setup: LaTeX not found; the report needs texlive-latex-base texlive-latex-recommended latexmk" \
             "(and the tests poppler-utils): install them with your package manager" >&2
    fi
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# torch is pinned in pyproject.toml (torch==2.13.0).
.venv/bin/python -m pip install -q -e '.[test]'
.venv/bin/vjepa --help >/dev/null
echo "setup: done (.venv ready; try .venv/bin/vjepa --help)"
