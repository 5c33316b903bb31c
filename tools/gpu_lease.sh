#!/bin/bash
# Train the Paraformer for a few minutes on a leased GPU machine that has torch but no espeak-ng, no network and
# a 64 MiB limit on what travels (tools/train_device.py does the training).
#
#   tools/gpu_lease.sh pack WEIGHTS WORK_DIR   # here: fills .gpu/ (git-ignored, ~17 MB)
#   tools/gpu_lease.sh run MINUTES OUT [ARGS]  # there, from the repo root, .gpu carried along
#
# pack: espeak-ng with its own libraries (libpcaudio replaced by a stub: --stdout never opens a sound device) and
# its English data, the cp312 wheels train_device needs beyond torch/numpy/sentencepiece (kaldi-native-fbank,
# soundfile, soxr), Multi30k's train.en/val.en, the run's tokens.model and cmvn.npz, and WEIGHTS as float16.
# run: installs those, renders a new corpus on all cores and trains until MINUTES (rendering included) are spent;
# OUT receives paraformer_weights.pt (float16), device_log.json and run.log.
set -euo pipefail
cmd=${1:-}
root=$(cd "$(dirname "$0")/../.." && pwd)
case "$cmd" in
pack)
  weights=$2; work=$3
  g=$root/.gpu
  grep -qx "/.gpu/" "$root/.git/info/exclude" 2>/dev/null || echo "/.gpu/" >> "$root/.git/info/exclude"
  rm -rf "$g"; mkdir -p "$g/lib" "$g/bin" "$g/whl" "$g/work" "$g/data" "$g/multi30k"
  printf '%s\n' '#include <stddef.h>' 'struct a; struct a *create_audio_device_object(const char *d, const char *b, const char *c) { return NULL; }' \
    'int audio_object_open(struct a *o, int f, unsigned r, unsigned char c) { return -1; }' 'void audio_object_close(struct a *o) {}' \
    'void audio_object_destroy(struct a *o) {}' 'int audio_object_write(struct a *o, const void *d, size_t b) { return -1; }' \
    'int audio_object_drain(struct a *o) { return 0; }' 'int audio_object_flush(struct a *o) { return 0; }' \
    'const char *audio_object_strerror(struct a *o, int e) { return "no audio"; }' > "$g/pcaudio_stub.c"
  gcc -shared -fPIC -O2 -o "$g/lib/libpcaudio.so.0" -Wl,-soname,libpcaudio.so.0 "$g/pcaudio_stub.c"
  cp -L /lib/x86_64-linux-gnu/libespeak-ng.so.1 "$g/lib/"; cp -L /lib/x86_64-linux-gnu/libsonic.so.0 "$g/lib/"
  cp "$(command -v espeak-ng)" "$g/bin/espeak-ng.real"
  printf '%s\n' '#!/bin/sh' 'here=$(dirname "$(readlink -f "$0")")' \
    'LD_LIBRARY_PATH="$here/../lib" ESPEAK_DATA_PATH="$here/../data" exec "$here/espeak-ng.real" "$@"' > "$g/bin/espeak-ng"
  chmod +x "$g/bin/espeak-ng"
  d=/usr/lib/x86_64-linux-gnu/espeak-ng-data
  cp "$d"/phon* "$d/intonations" "$d/en_dict" "$g/data/"; cp -r "$d/voices" "$d/lang" "$g/data/"
  m30=${SIMULSUB_MULTI30K:-$root/../shared/data/multi30k}
  cp "$m30/train.en" "$m30/val.en" "$g/multi30k/"
  (cd "$g" && tar -czf pack.tgz data multi30k && rm -rf data multi30k)  # '!v' voice folders travel inside the tar
  for p in kaldi_native_fbank==1.23.0 soundfile==0.14.0 soxr==1.1.0 cffi==2.1.1 pycparser==3.12; do
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
      --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
      --platform manylinux2014_x86_64 --platform any -d "$g/whl" "$p"
  done
  cp "$work/tokens.model" "$work/cmvn.npz" "$g/work/"
  "$root/.venv/bin/python" -c "import sys, torch; c = torch.load(sys.argv[1], map_location='cpu', weights_only=False); \
torch.save({'model': {k: v.half() for k, v in c['model'].items()}, 'config': c['config']}, sys.argv[2])" "$weights" "$g/init.pt"
  du -sh "$g"
  ;;
run)
  minutes=$2; out=$3; shift 3
  start=$(date +%s)
  export PYTHONUNBUFFERED=1
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$root"/.gpu/whl/*.whl
  export PYTHONPATH=/tmp/site:$root PATH=$root/.gpu/bin:$PATH
  tar -xzf "$root/.gpu/pack.tgz" -C "$root/.gpu"
  nvidia-smi -L || true
  left=$(python3 -c "print(round($minutes - ($(date +%s) - $start) / 60, 2))")
  python3 -m tools.train_device --work-dir "$root/.gpu/work" --init "$root/.gpu/init.pt" --out "$out" \
    --data-dir "$root/.gpu/multi30k" --device cuda --total-minutes "$left" --minutes "$minutes" "$@" 2>&1 | tee "$out/run.log"
  ;;
*)
  sed -n 2,14p "$0"; exit 2 ;;
esac
