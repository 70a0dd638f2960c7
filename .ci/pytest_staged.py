"""CI helper: python .ci/pytest_staged.py STAGE [--preimport MODULE]... [--expect-isa ISA]
[PYTEST ARGS...]

Runs pytest in this process after checking that shenjing is imported from STAGE (a staged
build from .ci/build, put first on PYTHONPATH by the caller) and, with --expect-isa, that its
kernels run that ISA. The --preimport modules are imported before shenjing
(.ci/static-libstdcxx loads onnx first, the order that broke C++ error messages with a
static libstdc++)."""
import importlib
import os
import sys


def main(argv):
    stage, rest = os.path.realpath(argv[0]), argv[1:]
    expect_isa = None
    while rest[:1] in (["--preimport"], ["--expect-isa"]):
        if rest[0] == "--preimport":
            importlib.import_module(rest[1])
        else:
            expect_isa = rest[1]
        rest = rest[2:]
    import shenjing
    where = os.path.realpath(shenjing._core.__file__)
    if not where.startswith(stage + os.sep):
        sys.exit(f"pytest_staged: shenjing._core comes from {where}, not from {stage}")
    if expect_isa and shenjing._core.isa() != expect_isa:
        sys.exit(f"pytest_staged: kernels run {shenjing._core.isa()}, not {expect_isa}")
    print(f"pytest_staged: shenjing._core from {where}, ISA {shenjing._core.isa()}", flush=True)
    import pytest
    return pytest.main(["-p", "no:cacheprovider", *rest])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
