"""pip, run from the wheel that ensurepip would install on this host (the one of python3-venv, or the one CPython
bundles) rather than installed into each venv: ensurepip unpacks and byte-compiles pip into every venv it makes, most
of the cost of a venv.

Run as `VENV/bin/python -I -c "<this file>" PIP_HOME <pip arguments>`, so that pip installs into that venv, which
then holds what it installed and no pip. The wheel is unpacked once into PIP_HOME/<wheel>-<python>-<sha256>, where
Python caches the compiled modules of pip, so only the first install on a host compiles them (from the zip, every run
did); a new pip wheel or Python on the host gets a new directory and the old one is removed.

No single quotes in this file: results/suite-timings/venv-cost.sh passes it single-quoted to a shell.
"""
import ensurepip, hashlib, os, runpy, shutil, sys, sysconfig, tempfile, zipfile

home, wheel = sys.argv.pop(1), "pip-%s-py3-none-any.whl" % ensurepip.version()
dirs = [d for d in (sysconfig.get_config_var("WHEEL_PKG_DIR"), os.path.join(os.path.dirname(ensurepip.__file__), "_bundled")) if d]
path = ([p for p in (os.path.join(d, wheel) for d in dirs) if os.path.isfile(p)] or sys.exit("no %s in %s" % (wheel, dirs)))[0]
with open(path, "rb") as f:
    name = "%s-%s-%s" % (wheel[:-4], sys.implementation.cache_tag, hashlib.sha256(f.read()).hexdigest()[:16])
if not os.path.isdir(os.path.join(home, name)):
    os.makedirs(home, 0o755, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".unpacking-", dir=home)
    zipfile.ZipFile(path).extractall(staging)
    os.chmod(staging, 0o755)
    os.rename(staging, os.path.join(home, name))
    for old in os.listdir(home):
        if old != name and old.startswith(("pip-", ".unpacking-")):
            shutil.rmtree(os.path.join(home, old), ignore_errors=True)
sys.path[:0] = [os.path.join(home, name)]
sys.argv[0] = "pip"
runpy.run_module("pip", run_name="__main__", alter_sys=True)
