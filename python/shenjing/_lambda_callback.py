"""LambdaCallback: Keras 3's callback built from functions given to its constructor."""
from shenjing.callbacks import Callback


class LambdaCallback(Callback):
    """A callback whose hooks are the functions given, e.g.
    ``LambdaCallback(on_epoch_end=lambda epoch, logs: print(epoch, logs["loss"]))``.

    Any other hook (``on_test_begin=``, ``on_predict_batch_end=``, ...) may be given by name
    too, as Keras allows. Functions take the hook's arguments: ``(epoch, logs)`` for epochs,
    ``(batch, logs)`` for batches, ``(logs)`` for the begin/end of training.
    """

    def __init__(self, on_epoch_begin=None, on_epoch_end=None, on_train_begin=None,
                 on_train_end=None, on_train_batch_begin=None, on_train_batch_end=None,
                 **kwargs):
        super().__init__()
        hooks = dict(on_epoch_begin=on_epoch_begin, on_epoch_end=on_epoch_end,
                     on_train_begin=on_train_begin, on_train_end=on_train_end,
                     on_train_batch_begin=on_train_batch_begin,
                     on_train_batch_end=on_train_batch_end, **kwargs)
        for name, fn in hooks.items():
            if fn is None:
                continue
            if not (name.startswith("on_") and callable(getattr(Callback, name, None))):
                raise TypeError(f"LambdaCallback: unknown hook {name!r}.")
            if not callable(fn):
                raise TypeError(f"LambdaCallback: {name} must be a function, received "
                                f"{fn!r:.80}.")
            setattr(self, name, fn)  # an instance attribute: not the base no-op, so it runs
