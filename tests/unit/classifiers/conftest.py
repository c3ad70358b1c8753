import pytest

from tests.unit.steering.conftest import make_tiny_sae

PIRATE = [
    "pirates say arr matey",
    "sail the seven seas for gold",
    "arr the pirates sail",
    "gold and seas matey",
    "the pirates find gold",
    "matey sail for the seas",
    "arr arr gold",
    "seven pirates sail the seas",
    "pirates and gold and seas",
    "sail matey sail",
]
CODE = [
    "def add(a, b): return a + b",
    "python code with numbers 1 2 3",
    "return a + b",
    "def f(a): return 1",
    "numbers 4 5 in python code",
    "def add(b): return b",
    "code 1 2 3 4 5",
    "python def return",
    "a + b + 1 2 3",
    "def code(a, b): return 5",
]


@pytest.fixture()
def tiny_sae():
    return make_tiny_sae()


@pytest.fixture()
def tiny_lab(tiny_lm, tiny_sae):
    from steerlab.engine.lab import Lab

    lab = Lab(tiny_lm, tiny_sae, max_batch=2)
    yield lab
    lab.close()


@pytest.fixture()
def texts():
    return PIRATE, CODE
