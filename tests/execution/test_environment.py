import sys

from gome_agent.execution.environment import Environment, Gpu, detect_environment


def test_description_names_the_installed_packages_and_the_common_ones_that_are_missing():
    env = Environment(cpus=4, memory_bytes=16 * 2**30, gpus=[Gpu("NVIDIA H100", 81559)],
                      packages={"python": "3.11.7", "numpy": "2.1.0", "scikit-learn": "1.5.0", "torch": "2.4.0"})
    text = env.describe()
    assert text.startswith("4 CPU cores, 16 GiB RAM, GPU: 1 x NVIDIA H100 (79 GiB). "
                           "Python 3.11.7 with numpy 2.1.0, scikit-learn 1.5.0, torch 2.4.0.")
    absent = text.split("Not installed (do not import): ")[1].rstrip(".").split(", ")
    assert "tensorflow" in absent and "lightgbm" in absent
    assert not {"numpy", "scikit-learn", "torch"} & set(absent)
    # A small model is told only what is installed: it imports the missing packages a list names.
    assert env.describe(name_absent=False) == text.split(" Not installed")[0]


def test_a_failed_probe_claims_nothing_is_missing():
    text = Environment(cpus=2, memory_bytes=2**30).describe()
    assert text.endswith("no GPU. Python ? with no ML packages found.")


def test_probe_of_this_interpreter_finds_its_packages():
    env = detect_environment(sys.executable)
    assert env.packages["python"] == sys.version.split()[0]
    assert "numpy" in env.packages
    _, _, absent = env.describe().partition("Not installed (do not import): ")
    assert "numpy" not in absent.rstrip(".").split(", ")
