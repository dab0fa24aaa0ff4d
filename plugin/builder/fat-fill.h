/* fat-fill.h: directories and files put into a FAT file system that
 * mformat has just made, as mmd and mcopy would put them.
 *
 * The writer is told the directories and files in the order mtools
 * created them (vfat.c: every directory, parents first, then the files
 * directory by directory) and works out, in memory, what mtools would
 * have written: each name's short name and long-name entries
 * (fat-short.h), the slot it takes in its directory (after the last one
 * used), a directory grown by a cluster when its names no longer fit,
 * clusters given out one after the other from the first free one (a
 * file's are contiguous; a directory's new one when mtools would have
 * written its buffer, see nri_fat_fill_flush()), every timestamp the same.
 * mtools reads and writes a directory through a buffer of 1 MiB: for a
 * directory of more entries than that (32768), it would write (and give
 * out clusters) at other moments too, and the clusters differ.  Nothing is written
 * until nri_fat_fill_write(): a name FAT cannot hold twice, a full root
 * directory or content larger than the clusters is found first.  The
 * files' data is the caller's to copy, to nri_fat_fill_data_offset().
 *
 * Unlike mtools, a directory grows by as many clusters as a long name
 * needs (mtools grows it once and fails), and the work per name does not
 * depend on the size of its directory or the depth of the tree. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vfat.h"

typedef struct nri_fat_fill nri_fat_fill;

/* For the file system of geometry `g` (nri_vfat_geometry_for()) whose root
 * holds the volume label entry `label` (its 11 bytes as mformat writes
 * them) or nothing (NULL), every timestamp `mtime` (seconds, within
 * NRI_VFAT_TIME_MIN..MAX).  Messages start with `what`.  0 or a negative
 * errno (-ENOTSUP: no C.UTF-8 locale or code page 437). */
int nri_fat_fill_new(const nri_vfat_geometry *g, const uint8_t *label, int64_t mtime, const char *what,
                     nri_fat_fill **ret);
void nri_fat_fill_free(nri_fat_fill *f);

/* A directory named `name` in directory `parent` (0 is the root, the
 * others numbered from 1 in the order they were made); *ret_index is its
 * number.  0, or a negative errno after a message naming the path:
 * -EEXIST (a name mtools would refuse next to one there: equal to
 * another's long or short name, case aside), -ENOSPC. */
int nri_fat_fill_mkdir(nri_fat_fill *f, size_t parent, const char *name, size_t *ret_index);

/* A file of `size` bytes named `name` in directory `dir`; *ret_cluster is
 * its first cluster (0 for an empty file), its data contiguous from there.
 * Errors as nri_fat_fill_mkdir(). */
int nri_fat_fill_file(nri_fat_fill *f, size_t dir, const char *name, uint64_t size, uint32_t *ret_cluster);

/* The start of an mcopy call that copies files into directory `dir`;
 * `scanned`: it looked the target name up there first (one file copied
 * under another name), else it names the directory.  What mtools has read
 * of the directory decides which short names it takes to be taken. */
int nri_fat_fill_begin(nri_fat_fill *f, size_t dir, bool scanned);

/* The end of an mcopy call that copied files into directory `dir`: the
 * clusters it grew by are given out now (mtools writes a directory
 * through a buffer, and gives out its new clusters when it writes the
 * buffer, after the data of the files copied meanwhile).  mmd's are given
 * out at the end of nri_fat_fill_mkdir(). */
int nri_fat_fill_flush(nri_fat_fill *f, size_t dir);

/* Where cluster `cluster`'s bytes are, from the start of the file system. */
uint64_t nri_fat_fill_data_offset(const nri_fat_fill *f, uint32_t cluster);

/* Checks that the file system at `offset` in `fd` is the one mformat was
 * to make (its root cluster and free-space hints as the writer expects),
 * then writes the directories, both FATs and the FAT32 information
 * sector.  0 or a negative errno (-EPROTO: mformat made something else). */
int nri_fat_fill_write(nri_fat_fill *f, int fd, uint64_t offset);
