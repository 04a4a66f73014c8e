#!/usr/bin/env bash
# Refresh the README's screenshots: run the browser journeys, then copy what they saw.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/test.sh -p no:cacheprovider -q -m browser
cp artifacts/screenshots/*.png docs/screenshots/
ls docs/screenshots
