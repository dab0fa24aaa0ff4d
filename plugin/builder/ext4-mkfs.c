/* ext4-mkfs.c: making an ext4 as mke2fs 1.47 makes it (misc/mke2fs.c: the
 * same library calls in the same order, with the parameters systemd-repart
 * 252's mkfs.ext4 command line and Debian's mke2fs.conf give), before any
 * content. */
#include "ext4-internal.h"
#include "nix-repart-image/macro.h"

#include <errno.h>
#include <et/com_err.h>
#include <ext2fs/ext2_fs.h>
#include <ext2fs/ext2fs.h>
#include <ext2fs/ext3_extents.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

DEFINE_TRIVIAL_CLEANUP_FUNC(ext2_filsys, ext2fs_free);

/* What PRS() in mke2fs.c puts into fs_param for systemd-repart 252's
 * `mkfs.ext4 -I 256 -O has_journal -m 0 -T default` with Debian's
 * mke2fs.conf: base_features plus the ext4 features, default mount options
 * acl,user_xattr, 4096-byte blocks, inode_ratio 16384, flex_bg size 16. */
static void fs_params(struct ext2_super_block *p, blk64_t blocks) {
        uint64_t inodes = blocks * BLOCK / INODE_RATIO;

        memset(p, 0, sizeof(*p));
        p->s_rev_level = EXT2_DYNAMIC_REV;
        p->s_log_block_size = 2; /* 1024 << 2 */
        ext2fs_set_feature_sparse_super(p);
        ext2fs_set_feature_large_file(p);
        ext2fs_set_feature_filetype(p);
        ext2fs_set_feature_resize_inode(p);
        ext2fs_set_feature_dir_index(p);
        ext2fs_set_feature_xattr(p);
        ext2fs_set_feature_journal(p);
        ext2fs_set_feature_extents(p);
        ext2fs_set_feature_huge_file(p);
        ext2fs_set_feature_flex_bg(p);
        ext2fs_set_feature_metadata_csum(p);
        ext2fs_set_feature_64bit(p);
        ext2fs_set_feature_dir_nlink(p);
        ext2fs_set_feature_extra_isize(p);
        if (blocks > UINT32_MAX) /* as mke2fs: no resize inode past 2^32 blocks */
                ext2fs_clear_feature_resize_inode(p);
        p->s_default_mount_opts = EXT2_DEFM_XATTR_USER | EXT2_DEFM_ACL;
        p->s_log_groups_per_flex = FLEX_BG_LOG;
        p->s_inode_size = INODE_SIZE;
        p->s_desc_size = EXT2_MIN_DESC_SIZE_64BIT;
        p->s_inodes_count = inodes > UINT32_MAX ? UINT32_MAX : (uint32_t)inodes;
        ext2fs_blocks_count_set(p, blocks);
        ext2fs_r_blocks_count_set(p, 0); /* -m 0 */
}

/* A new file system's superblock and group tables, in memory: mke2fs's
 * main() up to the overhead count.  *ret_overhead is the blocks the tables
 * take, *ret_journal the journal's size (0: too small for one). */
errcode_t ext4_fs_create(const char *name, uint64_t offset, blk64_t blocks, const nri_ext4_options *o,
                         ext2_filsys *ret, blk64_t *ret_overhead, struct ext2fs_journal_params *ret_journal,
                         const char **ret_call) {
        struct ext2_super_block param;
        _cleanup_(ext2fs_freep) ext2_filsys fs = NULL;
        blk64_t overhead;
        errcode_t err;
        char opt[64];

        fs_params(&param, blocks);
        *ret_call = "ext2fs_initialize";
        err = ext2fs_initialize(name, EXT2_FLAG_64BITS, &param, unix_io_manager, &fs);
        if (err)
                return err;
        if (offset) {
                snprintf(opt, sizeof(opt), "offset=%" PRIu64, offset);
                *ret_call = "io_channel_set_options";
                err = io_channel_set_options(fs->io, opt);
                if (err)
                        return err;
        }

        fs->super->s_max_mnt_count = -1; /* enable_periodic_fsck = 0 */
        fs->super->s_def_hash_version = EXT2_HASH_HALF_MD4;
        fs->super->s_checksum_type = EXT2_CRC32C_CHKSUM;
        fs->super->s_kbytes_written = 0; /* would count our writes: not part of the content */
        /* Before the tables: their checksums are seeded from the UUID. */
        if (o) {
                memcpy(fs->super->s_uuid, o->uuid.b, sizeof(fs->super->s_uuid));
                memcpy(fs->super->s_hash_seed, o->hash_seed.b, sizeof(fs->super->s_hash_seed));
        }
        ext2fs_init_csum_seed(fs);

        *ret_call = "ext2fs_allocate_tables";
        err = ext2fs_allocate_tables(fs);
        if (err)
                return err;
        *ret_call = "ext2fs_convert_subcluster_bitmap";
        err = ext2fs_convert_subcluster_bitmap(fs, &fs->block_map);
        if (err)
                return err;
        *ret_call = "ext2fs_count_used_clusters";
        err = ext2fs_count_used_clusters(fs, fs->super->s_first_data_block,
                                         ext2fs_blocks_count(fs->super) - 1, &overhead);
        if (err)
                return err;
        /* mke2fs: "Filesystem too small for a journal" leaves the journal out. */
        if (ext2fs_get_journal_params(ret_journal, fs) != 0) {
                memset(ret_journal, 0, sizeof(*ret_journal));
                ext2fs_clear_feature_journal(fs->super);
        }
        *ret_overhead = overhead;
        *ret = TAKE_PTR(fs);
        return 0;
}

int ext4_make_base(writer *w, const struct ext2fs_journal_params *jp, blk64_t overhead) {
        ext2_filsys fs = w->fs;
        struct ext2_inode_large zero = {0};
        ext2_ino_t lpf;
        errcode_t err;

        /* write_reserved_inodes(): with metadata_csum they need checksums */
        for (ext2_ino_t i = 1; i < EXT2_FIRST_INODE(fs->super); i++) {
                err = ext2fs_write_inode_full(fs, i, (struct ext2_inode *)&zero, sizeof(zero));
                if (err)
                        return ext4_log_ext2(w, err, "ext2fs_write_inode_full", "(reserved inodes)");
        }
        /* create_root_dir() */
        err = ext2fs_mkdir(fs, EXT2_ROOT_INO, EXT2_ROOT_INO, 0);
        if (err)
                return ext4_log_ext2(w, err, "ext2fs_mkdir", "/");
        /* create_lost_and_found(): mode 0700, 16 KiB */
        fs->umask = 077;
        err = ext2fs_mkdir(fs, EXT2_ROOT_INO, 0, "lost+found");
        fs->umask = 022;
        if (err)
                return ext4_log_ext2(w, err, "ext2fs_mkdir", "/lost+found");
        err = ext2fs_lookup(fs, EXT2_ROOT_INO, "lost+found", strlen("lost+found"), 0, &lpf);
        if (err)
                return ext4_log_ext2(w, err, "ext2fs_lookup", "/lost+found");
        w->lost_found = lpf;
        for (unsigned size = BLOCK; size < 16 * 1024; size += BLOCK) {
                err = ext2fs_expand_dir(fs, lpf);
                if (err)
                        return ext4_log_ext2(w, err, "ext2fs_expand_dir", "/lost+found");
        }
        /* reserve_inodes() */
        for (ext2_ino_t i = EXT2_ROOT_INO + 1; i < EXT2_FIRST_INODE(fs->super); i++)
                ext2fs_inode_alloc_stats2(fs, i, +1, 0);
        ext2fs_mark_ib_dirty(fs);
        /* create_bad_block_inode() */
        ext2fs_mark_inode_bitmap2(fs->inode_map, EXT2_BAD_INO);
        ext2fs_inode_alloc_stats2(fs, EXT2_BAD_INO, +1, 0);
        err = ext2fs_update_bb_inode(fs, NULL);
        if (err)
                return ext4_log_ext2(w, err, "ext2fs_update_bb_inode", "(bad blocks inode)");
        if (ext2fs_has_feature_resize_inode(fs->super)) {
                err = ext2fs_create_resize_inode(fs);
                if (err)
                        return ext4_log_ext2(w, err, "ext2fs_create_resize_inode", "(resize inode)");
        }
        if (jp->num_journal_blocks) {
                /* The range was cleared: the journal's blocks read as zeros
                 * without writing them (what lazy_journal_init skips). */
                err = ext2fs_add_journal_inode3(fs, (struct ext2fs_journal_params *)jp, ~0ULL,
                                                EXT2_MKJOURNAL_NO_MNT_CHECK | EXT2_MKJOURNAL_LAZYINIT);
                if (err)
                        return ext4_log_ext2(w, err, "ext2fs_add_journal_inode3", "(journal)");
                overhead += EXT2FS_NUM_B2C(fs, jp->num_journal_blocks + jp->num_fc_blocks);
        }
        overhead += fs->super->s_first_data_block;
        fs->super->s_overhead_clusters = overhead;
        return 0;
}

/* The inodes libext2fs made have the timestamp's low 32 bits (fs->now);
 * past 2038 they need its epoch bits too. */
int ext4_fix_times(writer *w) {
        static const ext2_ino_t inos[] = {EXT2_BAD_INO, EXT2_ROOT_INO, EXT2_RESIZE_INO, EXT2_JOURNAL_INO,
                                          11};

        if (w->t_extra == 0)
                return 0;
        for (size_t i = 0; i < sizeof(inos) / sizeof(*inos); i++) {
                struct ext2_inode_large inode;
                errcode_t err;
                int r;

                if (!ext2fs_test_inode_bitmap2(w->fs->inode_map, inos[i]))
                        continue;
                err = ext2fs_read_inode_full(w->fs, inos[i], (struct ext2_inode *)&inode, sizeof(inode));
                if (err)
                        return ext4_log_ext2(w, err, "ext2fs_read_inode_full", "(special inodes)");
                if (inode.i_mode == 0 && inos[i] != EXT2_BAD_INO)
                        continue; /* no resize inode or journal */
                inode.i_atime_extra = inode.i_ctime_extra = inode.i_mtime_extra = w->t_extra;
                if (inode.i_crtime)
                        inode.i_crtime_extra = w->t_extra;
                r = ext4_write_inode(w, inos[i], &inode, "(special inodes)");
                if (r < 0)
                        return r;
        }
        return 0;
}
