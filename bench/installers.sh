#!/usr/bin/env bash
# pip and uv installing one real dependency set (tabulate's test requirements: numpy, pandas, pytest,
# wcwidth and their dependencies) into fresh venvs on this machine's own disk, three times each,
# offline from a folder of wheels: the installers alone, no image build around them.
#   bash bench/installers.sh WHEELS_DIR        (the wheels for this machine's python3 and uv's wheel)
set -e
W=$(cd "$1" && pwd)
printf 'numpy==2.4.6\npandas==3.1.1\npytest==8.4.2\npluggy==1.7.0\niniconfig==2.3.1\npackaging==26.3\npygments==2.21.0\npython-dateutil==4.0.0\ntzdata==2026.6\nwcwidth==0.9.4\n' > /tmp/req.txt
python3 -m zipfile -e "$W"/uv-0.13.9-*.whl /tmp/uvx >/dev/null; UV=$(echo /tmp/uvx/uv-*.data/scripts/uv); chmod +x $UV
PY=$(command -v python3)
t() { s=$(date +%s.%N); if "$@" >/tmp/t.out 2>&1; then r=ok; else r="FAIL $(tail -c 300 /tmp/t.out)"; fi; e=$(date +%s.%N); python3 -c "print('%.2f' % ($e-$s))" | tr -d '\n'; echo " $r"; }
for run in 1 2 3; do
 for d in /tmp/v1 /tmp/v2 /tmp/v3; do rm -rf $d; $PY -m venv $d; done
 echo "run $run pip: $(t /tmp/v1/bin/python -m pip install --quiet --no-index --no-cache-dir --find-links $W -r /tmp/req.txt)"
 echo "run $run uv+compile: $(t $UV pip install --offline --no-index --no-cache --compile-bytecode --python /tmp/v2/bin/python --find-links $W -r /tmp/req.txt)"
 echo "run $run uv: $(t $UV pip install --offline --no-index --no-cache --python /tmp/v3/bin/python --find-links $W -r /tmp/req.txt)"
done
df -h /tmp | tail -1; nproc; /tmp/v2/bin/python -c "import numpy, pandas; print(numpy.__version__, pandas.__version__)"
