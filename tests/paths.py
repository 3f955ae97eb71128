"""Where this checkout is: the one ROOT every test and helper module uses."""
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "models"
TESTS = ROOT / "tests"
FAKE_PYNVML = ROOT / "tests" / "fake_pynvml"   # a pynvml answering from recorded NVML readings
