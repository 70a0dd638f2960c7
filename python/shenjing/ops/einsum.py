"""``ops.einsum`` on symbolic tensors, as transposes, reshapes and one batched matmul per pair
of operands (NumPy computes it eagerly on arrays)."""
import string

import numpy as np

from shenjing.ops import _trace
from shenjing.ops import numpy as knp
from shenjing.ops._dispatch import array, result_dtype, symbolic


def _parse(subscripts, operands):
    subscripts = subscripts.replace(" ", "")
    ins, arrow, out = subscripts.partition("->")
    terms = ins.split(",")
    if len(terms) != len(operands):
        raise ValueError(f"ops.einsum: '{subscripts}' names {len(terms)} operand(s), received "
                         f"{len(operands)}.")
    spare = [c for c in string.ascii_uppercase if c not in subscripts]
    ell_rank = max([len(o.shape) - len(t.replace("...", "")) for t, o in zip(terms, operands)
                    if "..." in t] or [0])
    ell = "".join(spare[:ell_rank])
    parsed = []
    for t, o in zip(terms, operands):
        if "..." in t:
            t = t.replace("...", ell[ell_rank - (len(o.shape) - len(t) + 3):])
        if len(t) != len(o.shape) or not t.isalpha():
            raise ValueError(f"ops.einsum: subscripts '{t}' do not fit an operand of shape "
                             f"{o.shape}.")
        parsed.append(t)
    if arrow:
        out = out.replace("...", ell)
    else:
        letters = "".join(parsed)
        out = ell + "".join(sorted(c for c in set(letters) if letters.count(c) == 1 and
                                   c not in ell))
    return parsed, out


def _sum_out(x, term, keep):
    """Sums the axes of x whose letters are not in keep."""
    axes = [i for i, c in enumerate(term) if c not in keep]
    if not axes:
        return x, term
    return knp.sum(x, axis=axes), "".join(c for c in term if c in keep)


def _dims(x, term):
    return {c: s for c, s in zip(term, x.shape)}


def _pair(a, ta, b, tb, out):
    """einsum of two operands whose letters not in the other or out are already summed."""
    if _batched(b) and not _batched(a):
        a, ta, b, tb = b, tb, a, ta
    batch = [c for c in out if c in ta and c in tb]
    contract = [c for c in ta if c in tb and c not in out]
    free_a = [c for c in ta if c not in tb]
    free_b = [c for c in tb if c not in ta]
    da, db = _dims(a, ta), _dims(b, tb)
    for c in batch + contract:
        if da[c] is not None and db[c] is not None and da[c] != db[c]:
            raise ValueError(f"ops.einsum: axis '{c}' has size {da[c]} in one operand and "
                             f"{db[c]} in the other.")
    k = int(np.prod([da[c] for c in contract])) if contract else 1
    fb = int(np.prod([db[c] for c in free_b])) if free_b else 1
    a2 = knp.transpose(a, [ta.index(c) for c in batch + free_a + contract])
    lead_a = [da[c] for c in batch + free_a] or []
    a2 = knp.reshape(a2, lead_a + ([] if free_a else [1]) + [k])
    b2 = knp.transpose(b, [tb.index(c) for c in batch + contract + free_b])
    ones = [1] * max(len(free_a) - 1, 0)
    b2 = knp.reshape(b2, [db[c] for c in batch] + ones + [k, fb])
    prod = knp.matmul(a2, b2)
    prod = knp.reshape(prod, [da[c] for c in batch + free_a] + [db[c] for c in free_b])
    return prod, "".join(batch + free_a + free_b)


def _batched(x):
    return len(x.shape) > 0 and x.shape[0] is None


def einsum(subscripts, *operands):
    """Einstein summation (Keras's ``ops.einsum``), e.g. 'ij,jk->ik', 'bij,bjk->bik',
    '...ij,jk->...ik'. Traced as transposes, reshapes and batched matmuls; the batch axis of
    a symbolic tensor must stay the first axis of the result."""
    if not symbolic(*operands):
        return np.einsum(subscripts, *[array(o) for o in operands]).astype(
            result_dtype(*operands))
    ts = [_trace.as_tensor(o) for o in operands]
    terms, out = _parse(subscripts, ts)
    cur, term = ts[0], terms[0]
    rest = "".join(terms[1:]) + out
    cur, term = _sum_out(cur, term, rest)
    for i in range(1, len(ts)):
        keep = "".join(terms[i + 1:]) + out
        nxt, nterm = _sum_out(ts[i], terms[i], term + keep)
        cur, term = _sum_out(cur, term, nterm + keep)
        target = "".join(dict.fromkeys(c for c in term + nterm if c in keep))
        cur, term = _pair(cur, term, nxt, nterm, target)
    cur, term = _sum_out(cur, term, out)
    if term != out:
        cur = knp.transpose(cur, [term.index(c) for c in out])
    return cur
