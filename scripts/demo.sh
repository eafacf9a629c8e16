#!/usr/bin/env bash
# The demo: installs what is missing, builds lockstep, runs a four-wall CAVE on this machine
# (a master and one render node per wall, as separate processes, frame-locked), renders the
# demo scene, and benchmarks the renderer on this machine.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

cargo build --release -p lockstep
lockstep=target/release/lockstep
$lockstep demo --frames 300 --out out/cave
$lockstep render --out out/demo.png --size 1280x720
$lockstep bench render --frames 60
echo "demo: open out/cave/cave.png (the CAVE's walls unfolded) and out/demo.png"
