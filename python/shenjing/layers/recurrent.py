"""SimpleRNN, LSTM and GRU with Keras 3's arguments, defaults, weights and gate orders.

The whole sequence runs in one C++ layer (``cpp/src/layers/recurrent.hpp``): Python never
steps through time. Weights, as in Keras: ``kernel`` (features, G * units),
``recurrent_kernel`` (units, G * units), ``bias`` (G * units), or (2, 3 * units) for a GRU
with ``reset_after`` (input bias, then recurrent bias); G is 1, 4 (gates i, f, c, o) or 3
(z, r, h). PyTorch's ``nn.LSTM`` holds the transposes with gates (i, f, g, o) and two biases
(their sum is Keras's bias); ``nn.GRU`` orders its gates (r, z, n) and matches ``reset_after``.

``dropout`` / ``recurrent_dropout`` (training only) are Keras 3's: one mask per sequence for
the inputs and one for the state, drawn at each training batch and reused at every step; with
``recurrent_dropout`` an LSTM or GRU draws one of each per gate, as Keras's cells then do.
The masks come from a C++ stream seeded by ``seed`` (cpp/src/layers/recurrent_dropout.hpp).
"""
import json
import numbers

import numpy as np

from shenjing import _random, activations, initializers, regularizers
from shenjing.layers.base import Layer

_CELL_ACTIVATIONS = ("linear", "relu", "sigmoid", "tanh")


class _Recurrent(Layer):
    _gates = 1
    _states = 1  # h (and c for an LSTM): return_state's extra outputs, initial_state's inputs
    supports_masking = True
    _takes_mask = True  # masked steps keep the state (see _masking.py)
    _config_kwargs = ("zero_output_for_mask",)  # taken through **kwargs, as in Keras

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 bias_initializer="zeros", kernel_regularizer=None, recurrent_regularizer=None,
                 bias_regularizer=None, activity_regularizer=None, kernel_constraint=None,
                 recurrent_constraint=None, bias_constraint=None, dropout=0.0,
                 recurrent_dropout=0.0, seed=None, return_sequences=False, return_state=False,
                 go_backwards=False, stateful=False, unroll=False, **kwargs):
        cls = type(self).__name__
        # Keras's RNN base: masked steps output zeros instead of repeating the state
        # (Bidirectional sets it on its layers when it returns sequences).
        self.zero_output_for_mask = bool(kwargs.pop("zero_output_for_mask", False))
        kwargs.pop("use_cudnn", None)
        implementation = kwargs.pop("implementation", 2)
        super().__init__(**kwargs)
        if isinstance(units, bool) or not isinstance(units, numbers.Integral) or units <= 0:
            raise ValueError(f"Received an invalid value for argument `units`, expected a "
                             f"positive integer, got {units!r}.")
        self.units = int(units)
        self.activation = activations.get_name(activation)
        self.recurrent_activation = activations.get_name(recurrent_activation)
        for what, name in (("activation", self.activation),
                           ("recurrent_activation", self.recurrent_activation)):
            if name not in _CELL_ACTIVATIONS:
                raise ValueError(f"{cls}: {what}='{name}' is not supported; recurrent cells "
                                 f"run {', '.join(_CELL_ACTIVATIONS)}.")
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.recurrent_initializer = initializers.get(recurrent_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.recurrent_regularizer = regularizers.get(recurrent_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        for what, v in (("activity_regularizer", activity_regularizer),
                        ("kernel_constraint", kernel_constraint),
                        ("recurrent_constraint", recurrent_constraint),
                        ("bias_constraint", bias_constraint)):
            if v is not None:
                raise ValueError(f"{cls}: {what} is not supported.")
        self.activity_regularizer = self.kernel_constraint = None
        self.recurrent_constraint = self.bias_constraint = None
        for what, v in (("dropout", dropout), ("recurrent_dropout", recurrent_dropout)):
            if isinstance(v, bool) or not isinstance(v, numbers.Real):
                raise ValueError(f"{cls}: {what} must be a float, received {v!r}.")
        # Keras clips the rates into [0, 1]. At 1 its cells disagree (SimpleRNN zeroes the
        # values, LSTM and GRU skip dropout in the cell and zero the inputs on the fused path),
        # so a rate of 1 is refused rather than given one of those meanings.
        self.dropout = min(1.0, max(0.0, float(dropout)))
        self.recurrent_dropout = min(1.0, max(0.0, float(recurrent_dropout)))
        for what in ("dropout", "recurrent_dropout"):
            if getattr(self, what) >= 1.0:
                raise ValueError(f"{cls}: {what}={getattr(self, what)!r} would drop every "
                                 f"value; use a rate in [0, 1).")
        if implementation == 1 and self.dropout and not self.recurrent_dropout and \
                self._gates > 1:
            # Keras 3.15 draws one input mask per gate there and then fails to broadcast
            # them on its fused path; implementation 2 (one mask for every gate) is what runs.
            raise ValueError(f"{cls}: implementation=1 with dropout and without "
                             f"recurrent_dropout does not run in Keras 3.15; leave "
                             f"implementation at 2.")
        if seed is not None and (isinstance(seed, bool) or
                                 not isinstance(seed, numbers.Integral)):
            raise ValueError(f"{cls}: seed must be an integer or None, received {seed!r}.")
        self.seed = seed
        self.return_sequences = bool(return_sequences)
        self.return_state = bool(return_state)
        self.go_backwards = bool(go_backwards)
        self.stateful = bool(stateful)
        self.unroll = bool(unroll)

    def get_config(self):
        config = super().get_config()
        config["zero_output_for_mask"] = self.zero_output_for_mask
        return config

    def compute_mask(self, inputs, mask=None):
        return mask if self.return_sequences else None

    def reset_states(self):
        """A stateful layer forgets the states carried from batch to batch (they start
        from zeros again), as Keras's ``reset_states`` / ``reset_state``."""
        if self._bound is not None:
            core, index = self._bound
            core.reset_states(index)

    reset_state = reset_states

    _state_inputs = False  # whether calls pass initial_state (the core layer then reads it)

    def _spec(self, seeded=True):
        spec = json.loads(super()._spec(seeded))
        spec["config"]["initial_state"] = self._state_inputs  # shenjing's, not Keras's
        return json.dumps(spec)

    def __call__(self, inputs, initial_state=None, training=None, mask=None, **kwargs):
        """``layer(x)``, or in the functional API ``layer(x, initial_state=[h0, c0])``; with
        ``return_state`` the outputs are ``[output, h]`` (and ``c`` for an LSTM), Keras's
        list. The core runs one layer whose output packs them; ``Model._emit`` slices it."""
        name = f"Layer '{self.name}' ({type(self).__name__})"
        if self._call_shapes is not None and (initial_state is not None) != self._state_inputs:
            # The core layer reads its inputs by position: a call must pass what the first did.
            raise ValueError(f"{name} was called with{'' if self._state_inputs else 'out'} "
                             f"initial_state before; every call must do the same.")
        if initial_state is None and not self.return_state:
            return super().__call__(inputs, training=training, mask=mask, **kwargs)
        from shenjing.layers import _masking
        from shenjing.layers.node import KerasTensor, Node, flatten_tensors, is_symbolic
        if kwargs:
            raise TypeError(f"{name}: unexpected argument(s) {', '.join(sorted(kwargs))}.")
        if mask is not None and not isinstance(mask, KerasTensor):
            raise TypeError(f"{name}: mask must be a symbolic tensor, received {mask!r:.100}.")
        if not is_symbolic(inputs):
            raise ValueError(f"{name}: initial_state and return_state work on symbolic tensors "
                             f"(the functional API), not on arrays.")
        self._check_training_arg(training)
        tensors = flatten_tensors(inputs, f"The input of layer '{self.name}'")
        if len(tensors) != 1:
            raise ValueError(f"{name} expects 1 input, but it received {len(tensors)} input "
                             f"tensors.")
        in_mask = _masking.call_mask(self, tensors, mask)
        count = self._states
        states = []
        if initial_state is not None:
            states = flatten_tensors(initial_state, f"initial_state of layer '{self.name}'")
            if len(states) != count:
                raise ValueError(f"{name}: initial_state must be a list of {count} tensor(s) "
                                 f"of shape (batch, {self.units}), received {len(states)}.")
            if in_mask is not None:
                raise ValueError(f"{name}: a mask together with initial_state is not "
                                 f"supported yet.")
        before = self._state_inputs
        self._state_inputs = bool(states)
        reads = tensors + ([in_mask] if in_mask is not None else []) + states
        try:
            self._output_shape_for([t.shape[1:] for t in reads])  # the core checks them all
        except BaseException:
            self._state_inputs = before  # a failed call changes nothing
            raise
        seq = tensors[0].shape[1]
        shapes = [(None, seq, self.units) if self.return_sequences else (None, self.units)]
        if self.return_state:
            shapes += [(None, self.units)] * count
        outs = [KerasTensor(shape, name=self.name) for shape in shapes]
        node = Node(self, inputs, reads, outs if self.return_state else outs[0])
        if in_mask is not None:
            node.call_kwargs["mask"] = in_mask
        if states:
            node.call_kwargs["initial_state"] = states
        outs[0]._keras_mask = self.compute_mask(inputs, in_mask)
        self.output_shape = shapes if self.return_state else shapes[0]
        return outs if self.return_state else outs[0]

    def _unpacking(self, packed):
        """With return_state: [(begin, end, shape)] of each Keras output in the core layer's
        flat per-sample output of ``packed`` floats."""
        u, count = self.units, self._states
        first = packed - count * u
        parts = [(0, first, (first // u, u) if self.return_sequences else (u,))]
        return parts + [(first + k * u, first + (k + 1) * u, (u,)) for k in range(count)]

    def _core_config(self):
        # The masks' C++ stream needs a seed (configs carry integers exactly up to 2^53): the
        # given one, or one drawn at the first build, as Dropout does; none is drawn without
        # dropout, so models without it draw the package generator as before.
        config = self.get_config()
        seed = self.seed
        if seed is None and (self.dropout or self.recurrent_dropout):
            if getattr(self, "_drawn_seed", None) is None:
                self._drawn_seed = _random.draw_seed()
            seed = self._drawn_seed
        return config if seed is None else {**config, "seed": int(seed) % 2**53}

    def _initial_values(self, name, shape):
        if name == "kernel":
            return self.kernel_initializer(shape)
        if name == "recurrent_kernel":
            return self.recurrent_initializer(shape)
        return self.bias_initializer(shape)


class SimpleRNN(_Recurrent):
    """Fully-connected RNN: ``h_t = activation(x_t W + h_{t-1} U + b)``.

    Input (batch, timesteps, features); output (batch, units), or (batch, timesteps, units)
    with ``return_sequences=True``. ``go_backwards`` runs the sequence from its end and
    returns the outputs in that order. ``activation`` may be tanh (default), relu, sigmoid or
    linear.
    """

    def __init__(self, units, activation="tanh", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 bias_initializer="zeros", kernel_regularizer=None, recurrent_regularizer=None,
                 bias_regularizer=None, activity_regularizer=None, kernel_constraint=None,
                 recurrent_constraint=None, bias_constraint=None, dropout=0.0,
                 recurrent_dropout=0.0, return_sequences=False, return_state=False,
                 go_backwards=False, stateful=False, unroll=False, seed=None, **kwargs):
        super().__init__(
            units, activation=activation, use_bias=use_bias,
            kernel_initializer=kernel_initializer, recurrent_initializer=recurrent_initializer,
            bias_initializer=bias_initializer, kernel_regularizer=kernel_regularizer,
            recurrent_regularizer=recurrent_regularizer, bias_regularizer=bias_regularizer,
            activity_regularizer=activity_regularizer, kernel_constraint=kernel_constraint,
            recurrent_constraint=recurrent_constraint, bias_constraint=bias_constraint,
            dropout=dropout, recurrent_dropout=recurrent_dropout, seed=seed,
            return_sequences=return_sequences, return_state=return_state,
            go_backwards=go_backwards, stateful=stateful, unroll=unroll, **kwargs)

    def get_config(self):
        config = super().get_config()
        config.pop("seed", None)  # Keras 3.15's SimpleRNN config has no seed
        return config


class LSTM(_Recurrent):
    """Long Short-Term Memory (Hochreiter 1997), Keras 3's formulation: gates i, f, c, o;
    ``c_t = f c_{t-1} + i activation(z_c)``, ``h_t = o activation(c_t)``; i, f, o use
    ``recurrent_activation``. ``unit_forget_bias=True`` starts the forget gate's bias at 1.

    Input (batch, timesteps, features); output (batch, units), or (batch, timesteps, units)
    with ``return_sequences=True``. The sequence runs in one C++ call: the input projection
    of all steps is one matrix product, the gates are fused and vectorised.
    """

    _gates = 4
    _states = 2

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 bias_initializer="zeros", unit_forget_bias=True, kernel_regularizer=None,
                 recurrent_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, recurrent_constraint=None, bias_constraint=None,
                 dropout=0.0, recurrent_dropout=0.0, seed=None, return_sequences=False,
                 return_state=False, go_backwards=False, stateful=False, unroll=False,
                 **kwargs):
        super().__init__(
            units, activation=activation, recurrent_activation=recurrent_activation,
            use_bias=use_bias, kernel_initializer=kernel_initializer,
            recurrent_initializer=recurrent_initializer, bias_initializer=bias_initializer,
            kernel_regularizer=kernel_regularizer, recurrent_regularizer=recurrent_regularizer,
            bias_regularizer=bias_regularizer, activity_regularizer=activity_regularizer,
            kernel_constraint=kernel_constraint, recurrent_constraint=recurrent_constraint,
            bias_constraint=bias_constraint, dropout=dropout,
            recurrent_dropout=recurrent_dropout, seed=seed, return_sequences=return_sequences,
            return_state=return_state, go_backwards=go_backwards, stateful=stateful,
            unroll=unroll, **kwargs)
        self.unit_forget_bias = bool(unit_forget_bias)

    def _initial_values(self, name, shape):
        if name == "bias" and self.unit_forget_bias:
            # Keras: the bias initializer on i, ones on f, the initializer on c and o.
            u = self.units
            return np.concatenate([self.bias_initializer((u,)), np.ones(u, np.float32),
                                   self.bias_initializer((2 * u,))])
        return super()._initial_values(name, shape)


class GRU(_Recurrent):
    """Gated Recurrent Unit (Cho et al. 2014), Keras 3's formulation: gates z, r, h;
    ``h_t = z h_{t-1} + (1 - z) hh``. With ``reset_after=True`` (the default, as cuDNN and
    PyTorch) r multiplies ``h_{t-1} U_h + b_rh`` and the bias is (2, 3 * units); otherwise r
    multiplies ``h_{t-1}`` before ``U_h``.

    Input (batch, timesteps, features); output (batch, units), or (batch, timesteps, units)
    with ``return_sequences=True``.
    """

    _gates = 3

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 bias_initializer="zeros", kernel_regularizer=None, recurrent_regularizer=None,
                 bias_regularizer=None, activity_regularizer=None, kernel_constraint=None,
                 recurrent_constraint=None, bias_constraint=None, dropout=0.0,
                 recurrent_dropout=0.0, seed=None, return_sequences=False, return_state=False,
                 go_backwards=False, stateful=False, unroll=False, reset_after=True,
                 use_cudnn="auto", **kwargs):
        super().__init__(
            units, activation=activation, recurrent_activation=recurrent_activation,
            use_bias=use_bias, kernel_initializer=kernel_initializer,
            recurrent_initializer=recurrent_initializer, bias_initializer=bias_initializer,
            kernel_regularizer=kernel_regularizer, recurrent_regularizer=recurrent_regularizer,
            bias_regularizer=bias_regularizer, activity_regularizer=activity_regularizer,
            kernel_constraint=kernel_constraint, recurrent_constraint=recurrent_constraint,
            bias_constraint=bias_constraint, dropout=dropout,
            recurrent_dropout=recurrent_dropout, seed=seed, return_sequences=return_sequences,
            return_state=return_state, go_backwards=go_backwards, stateful=stateful,
            unroll=unroll, **kwargs)
        self.reset_after = bool(reset_after)
