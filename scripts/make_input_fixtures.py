#!/usr/bin/env python3
"""Writes the tiny numpy fixtures for GateScopeInput tests into Tests/Fixtures/inputs/.

Run from the repository root: python3 scripts/make_input_fixtures.py
The values are simple arange patterns so the Swift tests can state them inline.
"""
import os

import numpy as np

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "Fixtures", "inputs")


def path(name):
    return os.path.join(OUT, name)


def write_version(name, arr, version):
    with open(path(name), "wb") as f:
        np.lib.format.write_array(f, arr, version=version)


def main():
    os.makedirs(OUT, exist_ok=True)

    # Plain arrays of each supported dtype.
    np.save(path("f8_3d.npy"), (np.arange(12, dtype="<f8") / 4 - 1).reshape(2, 3, 2))  # [batch, time, features]
    np.save(path("f4_2d.npy"), (np.arange(12, dtype="<f4") / 2).reshape(4, 3))  # one sequence [time, features]
    np.save(path("i8_tokens.npy"), np.array([[1, 2, 3, 0], [4, 5, 0, 0]], dtype="<i8"))
    np.save(path("i4_tokens.npy"), np.array([[7, 8, 9]], dtype="<i4"))
    np.save(path("i2.npy"), np.array([-3, 0, 300], dtype="<i2"))
    np.save(path("u2.npy"), np.array([0, 65535], dtype="<u2"))
    np.save(path("u1.npy"), np.array([[0, 255]], dtype="|u1"))
    np.save(path("bool.npy"), np.array([True, False, True]))
    np.save(path("unicode.npy"), np.array(["a", "héllo", "😀"]))
    np.save(path("scalar.npy"), np.float32(2.5))

    # Header versions 2.0 and 3.0 (numpy picks them only for huge or non-latin-1 headers).
    write_version("v2.npy", np.arange(6, dtype="<f4").reshape(2, 3), (2, 0))
    write_version("v3.npy", np.arange(6, dtype="<f4").reshape(2, 3), (3, 0))

    # Things the readers refuse.
    np.save(path("big_endian.npy"), np.arange(4, dtype=">f4"))
    np.save(path("fortran.npy"), np.asfortranarray(np.arange(6, dtype="<f4").reshape(2, 3)))
    np.save(path("object.npy"), np.array([1, "a", None], dtype=object), allow_pickle=True)

    # Token ids with per-sequence lengths and unicode ids (stored zip, like np.savez).
    np.savez(path("tokens_ids.npz"),
             x=np.array([[1, 2, 3, 4, 5], [6, 7, 0, 0, 0], [8, 0, 0, 0, 0]], dtype="<i4"),
             lengths=np.array([5, 2, 1], dtype="<i8"),
             ids=np.array(["alpha", "séq-β", "😀x"]))
    # Float features, deflated (np.savez_compressed), integer ids.
    np.savez_compressed(path("features_compressed.npz"),
                        x=(np.arange(24, dtype="<f4") / 8).reshape(2, 4, 3),
                        lengths=np.array([4, 2], dtype="<i4"),
                        ids=np.array([10, 20], dtype="<i8"))


if __name__ == "__main__":
    main()
