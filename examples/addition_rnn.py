"""Sequence to sequence learning of number addition: "535+61" -> "596".

The recipe of keras.io's example (examples/nlp/addition_rnn.py, Smerity and others): 50000
distinct questions "a+b" with a and b of 1 to 3 digits, padded with spaces to 7 characters and
reversed (shorter dependencies between question and answer), answers padded to 4 characters,
both one-hot encoded as NumPy bool arrays over the 12 characters "0123456789+ ". An LSTM(128)
encodes the question, RepeatVector(4) hands its last output to each step of an LSTM(128)
decoder, and Dense(12, softmax) picks a character per step (Dense on a 3-D input works per time
step, as in Keras). categorical_crossentropy, Adam, batch 32, 10% held out for validation; like
the original, ``range(1, epochs)`` trains 29 one-epoch rounds for epochs=30, each followed by
10 random validation questions answered with ``model.predict`` (its default progress line
included) and marked right or wrong. Runs unchanged with ``import keras`` / ``from keras import
layers``.

Measured: validation accuracy first over 99% at round 16 (seed 0; round 14 in an unseeded
run), then mostly 99.0-99.9% with single-round dips to 96.7-98.5%; 99.81% after the last round
(seed 0). An epoch takes 2 s with 1 or 2 threads (Keras 3.15 with the torch backend, 1 thread,
same machine: 11 s).

Run: ``python examples/addition_rnn.py [--epochs N] [--training-size N] [--digits N]
[--seed N]``.
"""
import argparse

import numpy as np

import shenjing as keras
from shenjing import layers

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--epochs", type=int, default=30)
parser.add_argument("--training-size", type=int, default=50000)
parser.add_argument("--digits", type=int, default=3)
parser.add_argument("--seed", type=int, default=None,
                    help="seed the data, the weights and the shuffling (unseeded by default)")
args = parser.parse_args()
if args.seed is not None:
    keras.utils.set_random_seed(args.seed)

TRAINING_SIZE = args.training_size
DIGITS = args.digits
REVERSE = True
# The longest question is "int+int", each int at most DIGITS long.
MAXLEN = DIGITS + 1 + DIGITS


class colors:
    ok = "\033[92m"
    fail = "\033[91m"
    close = "\033[0m"


class CharacterTable:
    """One-hot encoding of strings over a fixed alphabet, and decoding back from one-hot rows,
    probability rows (argmax) or character indices."""

    def __init__(self, chars):
        self.chars = sorted(set(chars))
        self.char_indices = {c: i for i, c in enumerate(self.chars)}
        self.indices_char = {i: c for i, c in enumerate(self.chars)}

    def encode(self, C, num_rows):
        """C as a (num_rows, len(chars)) one-hot array; rows past the end of C stay zero."""
        x = np.zeros((num_rows, len(self.chars)))
        for i, c in enumerate(C):
            x[i, self.char_indices[c]] = 1
        return x

    def decode(self, x, calc_argmax=True):
        """Rows of scores (calc_argmax) or character indices back to a string."""
        if calc_argmax:
            x = x.argmax(axis=-1)
        return "".join(self.indices_char[i] for i in x)


# Digits, the plus sign and the space that pads.
chars = "0123456789+ "
ctable = CharacterTable(chars)


def random_number():
    """A number of 1 to DIGITS random decimal digits."""
    length = np.random.randint(1, DIGITS + 1)
    return int("".join(np.random.choice(list("0123456789")) for _ in range(length)))


questions = []
expected = []
seen = set()
print("Generating data...")
while len(questions) < TRAINING_SIZE:
    a, b = random_number(), random_number()
    # One question per unordered pair: a+b and b+a are the same question.
    key = tuple(sorted((a, b)))
    if key in seen:
        continue
    seen.add(key)
    query = f"{a}+{b}".ljust(MAXLEN)
    answer = str(a + b).ljust(DIGITS + 1)  # at most DIGITS + 1 characters: 999+999=1998
    if REVERSE:
        query = query[::-1]  # '12+345 ' becomes ' 543+21'
    questions.append(query)
    expected.append(answer)
print("Total questions:", len(questions))

print("Vectorization...")
x = np.zeros((len(questions), MAXLEN, len(chars)), dtype=bool)
y = np.zeros((len(questions), DIGITS + 1, len(chars)), dtype=bool)
for i, sentence in enumerate(questions):
    x[i] = ctable.encode(sentence, MAXLEN)
for i, sentence in enumerate(expected):
    y[i] = ctable.encode(sentence, DIGITS + 1)

# Pairs of small numbers run out first (there are 55 of one-digit numbers), so the later
# questions are almost all of longer numbers: shuffle before splitting off the validation set.
indices = np.arange(len(y))
np.random.shuffle(indices)
x = x[indices]
y = y[indices]

# 10% for validation, never trained on.
split_at = len(x) - len(x) // 10
(x_train, x_val) = x[:split_at], x[split_at:]
(y_train, y_val) = y[:split_at], y[split_at:]
print("Training Data:", x_train.shape, y_train.shape)
print("Validation Data:", x_val.shape, y_val.shape)

print("Build model...")
num_layers = 1  # decoder LSTM layers

model = keras.Sequential()
# Encoder: the question to one vector of 128 (input_shape=(None, len(chars)) would take
# questions of any length).
model.add(layers.LSTM(128, input_shape=(MAXLEN, len(chars))))
# The decoder sees that vector at each of its DIGITS + 1 steps.
model.add(layers.RepeatVector(DIGITS + 1))
for _ in range(num_layers):
    model.add(layers.LSTM(128, return_sequences=True))
# Dense on (batch, steps, 128): one softmax over the characters per output step.
model.add(layers.Dense(len(chars), activation="softmax"))
model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
model.summary()

epochs = args.epochs
batch_size = 32

for epoch in range(1, epochs):
    print()
    print("Iteration", epoch)
    model.fit(x_train, y_train, batch_size=batch_size, epochs=1,
              validation_data=(x_val, y_val))
    # Ten random validation questions, to see what the model gets wrong.
    for i in range(10):
        ind = np.random.randint(0, len(x_val))
        rowx, rowy = x_val[np.array([ind])], y_val[np.array([ind])]
        preds = np.argmax(model.predict(rowx), axis=-1)
        q = ctable.decode(rowx[0])
        correct = ctable.decode(rowy[0])
        guess = ctable.decode(preds[0], calc_argmax=False)
        print("Q", q[::-1] if REVERSE else q, end=" ")
        print("T", correct, end=" ")
        if correct == guess:
            print(colors.ok + "☑" + colors.close, guess)
        else:
            print(colors.fail + "☒" + colors.close, guess)
