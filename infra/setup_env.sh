#!/usr/bin/env bash
# Create or refresh the project's environment on a fresh Debian machine. Idempotent and
# fast when nothing changed (every step checks before it acts):
#   1. Debian packages for offscreen MuJoCo rendering (EGL/Mesa) and git for DVC;
#   2. Python 3.12 (pyenv's, or python3.12 on PATH) and uv;
#   3. .venv synced exactly to uv.lock (the committed lock file).
set -euo pipefail
cd "$(dirname "$0")/.."

DEBIAN_PACKAGES=(libegl1 libopengl0 libgl1-mesa-dri libegl-mesa0 git ffmpeg curl)
UV_VERSION=0.13.9

missing=()
for package in "${DEBIAN_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}"
  SUDO=$([ "$(id -u)" -eq 0 ] && echo "" || echo "sudo")
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

python_312=""
for candidate in "$(pyenv root 2>/dev/null)/versions/3.12.1/bin/python3.12" "$(command -v python3.12 || true)"; do
  if [ -x "$candidate" ]; then python_312="$candidate"; break; fi
done
if [ -z "$python_312" ]; then
  echo "setup: Python 3.12 not found (lerobot 0.6.1 needs it): install it with pyenv or apt" >&2
  exit 1
fi

if ! python3 -m uv --version 2>/dev/null | grep -q "$UV_VERSION"; then
  echo "setup: installing uv $UV_VERSION"
  python3 -m pip install -q "uv==$UV_VERSION"
fi

# --frozen: install exactly the lock; never re-resolve on a user's machine.
# --compile-bytecode: write every package's .pyc now (~40 s, once). Where
# PYTHONDONTWRITEBYTECODE is set (this machine and CI) Python never caches them itself,
# and each process -- an `apo` command, a Ray worker, a test subprocess -- recompiled
# torch, transformers and prefect from source: ~11 of a 15 s `apo collect` here.
python3 -m uv sync --frozen --quiet --compile-bytecode --python "$python_312"
