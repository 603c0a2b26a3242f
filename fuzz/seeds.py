#!/usr/bin/env python3
"""Write the hand-made seeds of fuzz/corpus/ (the input format is the decoder
of fuzz_memslot.c: a config byte, then operations).  Usage: fuzz/seeds.py DIR"""
import os
import struct
import sys

SLOT = {0: 0, 1: 1, 2: 2, 'as1': 6}   # indexes into gen_slot()'s table


def u16(v):
    return list(struct.pack('<H', v & 0xffff))


def set_region(slot, flags, gpa_page, npages, hva_page):
    # op 0; gk 3 (page), sk 4 (1 + n % 1024 pages), hk 3 (host page)
    return [0, SLOT[slot], flags, 3, 4, 3] + u16(npages - 1) + u16(gpa_page) + u16(hva_page)


def delete(slot):
    return [0, SLOT[slot], 0, 3, 0, 3] + u16(0) + u16(0)


def enable_cap(args):
    return [3, args & 7]


def get_log(slot):
    return [4, SLOT[slot], 1]


def clear_log(slot, first64, pattern):
    return [5, SLOT[slot], 0x10, pattern, first64]   # num_pages: to the end


def guest(accesses, nslots):
    """accesses: (write, len_idx, slot_index, page, offset_units, value)"""
    out = [6, len(accesses) - 1]
    for w, l, s, page, off, val in accesses:
        out += [l | (0 if w else 4)] + ([s] if nslots else []) + [val] + u16(page) + u16(off)
    return out


SEEDS = {
    'basic-log': [0] + set_region(0, 1, 0, 64, 0)
    + guest([(1, 3, 0, 1, 0, 7), (1, 0, 0, 5, 3, 9), (0, 3, 0, 1, 0, 0)], 1)
    + get_log(0) + get_log(0),
    'manual-initially-set': [0] + enable_cap(3) + set_region(1, 1, 256, 100, 64)
    + clear_log(1, 0, 0x55) + guest([(1, 3, 0, 3, 1, 1), (1, 2, 0, 70, 2, 2)], 1)
    + get_log(1) + clear_log(1, 1, 0xff) + get_log(1),
    'readonly-mmio': [0] + set_region(0, 2, 0, 16, 0) + set_region(1, 1, 64, 16, 32)
    + guest([(1, 3, 0, 2, 0, 5), (0, 3, 0, 2, 0, 0), (1, 3, 1, 3, 0, 6)], 2) + get_log(1),
    'move-delete': [0] + set_region(0, 1, 0, 32, 0) + guest([(1, 3, 0, 4, 0, 1)], 1)
    + set_region(0, 1, 512, 32, 0) + get_log(0) + guest([(1, 3, 0, 4, 0, 2)], 1)
    + delete(0) + get_log(0),
    'dbit-flags-only': [4] + set_region(0, 0, 0, 64, 0) + guest([(1, 3, 0, 1, 0, 1)], 1)
    + set_region(0, 1, 0, 64, 0) + guest([(1, 3, 0, 1, 0, 2), (1, 3, 0, 9, 0, 3)], 1)
    + get_log(0) + set_region(0, 0, 0, 64, 0),
    'one-address-space': [1] + set_region('as1', 1, 0, 8, 0) + set_region(0, 1, 0, 8, 0)
    + get_log('as1') + get_log(0),
    'thp-ro-reads': [0x82] + set_region(0, 1, 512, 512, 512)
    + guest([(0, 3, 0, 0, 0, 0), (1, 3, 0, 0, 0, 1), (0, 3, 0, 7, 0, 0)], 1) + get_log(0),
}

if __name__ == '__main__':
    d = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), 'corpus')
    os.makedirs(d, exist_ok=True)
    for name, data in SEEDS.items():
        with open(os.path.join(d, 'seed-' + name), 'wb') as f:
            f.write(bytes(data))
