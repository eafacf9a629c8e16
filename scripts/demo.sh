#!/usr/bin/env bash
# The demo: installs what is missing, builds lockstep, renders the demo scene to out/demo.png
# and a short animation to out/frames/, and benchmarks the renderer on this machine.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

cargo build --release -p lockstep
lockstep=target/release/lockstep
$lockstep render --out out/demo.png --size 1280x720
$lockstep render --out out/frames/demo.png --size 640x360 --frames 30
$lockstep bench render --frames 60
echo "demo: open out/demo.png (and out/frames/demo-0000.png … demo-0029.png)"
