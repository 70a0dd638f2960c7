"""A stack private to each thread: what tracing and loading keep while they run (the layer
being traced, its training mode, the custom objects in scope), so that models built or loaded
from several threads at once do not see each other's state."""
import threading


class ThreadStack(threading.local):
    def __init__(self):
        self.items = []

    def append(self, x):
        self.items.append(x)

    def pop(self):
        return self.items.pop()

    def __getitem__(self, i):
        return self.items[i]

    def __len__(self):
        return len(self.items)

    def __bool__(self):
        return bool(self.items)

    def __iter__(self):
        return iter(list(self.items))
