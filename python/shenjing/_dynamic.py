"""Axes of unknown size: ``Input((None, 28))`` or ``Input((None,), dtype="int32")``, where each
call of fit, evaluate or predict may bring sequences of another length.

The core runs concrete shapes, so a model with such axes keeps them symbolic (layer output
shapes, summary, configs show None, as Keras) and builds its C++ model for the shapes of the
data in hand: at definition with a probe size (so that weights exist and count), then again
whenever the data's shapes change (``Model._specialize``). Every rebuild shares the layers'
weight buffers, and carries the optimizer state and the random streams over, so training
continues exactly. Output shapes are found by building each layer at two probe sizes: an axis
that follows the input's unknown axis is unknown too.
"""
PROBES = (1024, 1031)  # long enough for any window; nothing is allocated for them


def is_dynamic(shapes):
    """Whether any per-sample shape in ``shapes`` has an axis of unknown size."""
    return any(d is None for s in shapes for d in s)


def probe(shape, size=PROBES[0]):
    return tuple(size if d is None else d for d in shape)


def infer(fn, shapes):
    """``fn(concrete shapes)`` -> (output shape, extra): (the output shape, with the axes that
    depend on the inputs' unknown axes set to None, [extra of each probe]); one probe, the
    shapes themselves, when no axis is unknown."""
    if not is_dynamic(shapes):
        out, extra = fn([list(s) for s in shapes])
        return tuple(out), [extra]
    a, extra_a = fn([list(probe(s, PROBES[0])) for s in shapes])
    b, extra_b = fn([list(probe(s, PROBES[1])) for s in shapes])
    return tuple(x if x == y else None for x, y in zip(a, b)), [extra_a, extra_b]


def matches(expected, got):
    """Whether concrete shape ``got`` fits ``expected`` (None: any size)."""
    return len(expected) == len(got) and all(e is None or e == g
                                              for e, g in zip(expected, got))
