"""``utils.text_dataset_from_directory`` (keras/src/utils/text_dataset_utils.py): ``.txt``
files in class subfolders as batches of strings."""
import numpy as np

from shenjing import _dataset_utils as du


def text_dataset_from_directory(directory, labels="inferred", label_mode="int",
                                class_names=None, batch_size=32, max_length=None,
                                shuffle=True, seed=None, validation_split=None, subset=None,
                                follow_links=False, format="tf", verbose=True):
    """Keras's ``text_dataset_from_directory`` as a ``utils.PyDataset``: each batch is
    ``(texts, labels)`` (only ``texts`` when ``label_mode=None``), ``texts`` a NumPy object
    array of ``str`` (the files read as UTF-8, cut to ``max_length`` characters as Keras's
    grain format does), labels encoded as in ``image_dataset_from_directory``.
    ``subset='both'`` returns ``[train, validation]``; ``class_names`` attribute."""
    du.check_labels_args(labels, label_mode, class_names)
    if format not in ("tf", "grain"):
        raise ValueError(f'`format` should be either "tf" or "grain". Received: '
                         f"format={format}")
    if labels is None or label_mode is None:
        labels, label_mode = None, None
    max_length = du.check_positive_int(max_length, "max_length", allow_none=True)
    batch_size = du.check_positive_int(batch_size, "batch_size", allow_none=True)
    seed = du.check_seed(seed)
    du.check_validation_split_arg(validation_split, subset, shuffle, seed)
    if seed is None:
        seed = int(np.random.randint(1e6))
    paths, labels, class_names = du.index_directory(
        directory, labels, formats=(".txt",), class_names=class_names, shuffle=shuffle,
        seed=seed, follow_links=follow_links, verbose=verbose)
    if label_mode == "binary" and len(class_names) != 2:
        raise ValueError(f'When passing `label_mode="binary"`, there must be exactly 2 '
                         f"class_names. Received: class_names={class_names}")
    num_classes = len(class_names) if class_names else 0
    if label_mode in ("binary", "categorical") and len(labels) and \
            int(np.max(labels)) >= num_classes:
        raise ValueError(f"Labels go up to {int(np.max(labels))}, more than the "
                         f"{num_classes} classes.")
    out = []
    for part_paths, part_labels, training in du.subsets(paths, labels, validation_split,
                                                        subset, verbose):
        if not part_paths:
            which = {"both": "training " if training else "validation "}.get(subset, "")
            raise ValueError(f"No {which}text files found in directory {directory}. "
                             f"Allowed format: .txt")
        ds = _text_dataset(list(part_paths), part_labels, label_mode, num_classes,
                           max_length, batch_size, shuffle and training, seed)
        ds.class_names = class_names
        ds.file_paths = list(part_paths)
        out.append(ds)
    return out if subset == "both" else out[0]


def _text_dataset(paths, labels, label_mode, num_classes, max_length, batch_size, shuffle,
                  seed):
    encoded = None if label_mode is None else du.encode_labels(labels, label_mode,
                                                               num_classes)

    def read(path):
        with open(path, encoding="utf-8") as f:
            text = f.read() if max_length is None else f.read(max_length)
        return text

    def load(indices):
        texts = np.empty(len(indices), dtype=object)
        texts[:] = [read(paths[i]) for i in indices]
        if encoded is None:
            return texts
        return texts, encoded[indices]

    return du.SampleDataset(len(paths), load, batch_size, shuffle, seed)
