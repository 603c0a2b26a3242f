// SPDX-License-Identifier: MIT
/*
 * Indirect shadow pages next to the TDP MMU (kvm-brief.md 1.2 on
 * mmu_unsync_pages_lock, 5.1 on the "1 0 0" writable state).
 *
 * When L1 runs L2 with nested EPT, KVM shadows L1's EPT tables for L2 (EPT12
 * -> EPT02) with indirect shadow pages (role.direct == 0): for each guest
 * page-table page it shadows, KVM must see every write L1 makes to it.
 * So the gfn is write-protected in the TDP MMU, the mapping L1 itself runs
 * on.  A last-level table may instead go "unsync": KVM lets L1 write it and
 * re-reads it when L1 flushes its TLB or enters L2 again (the sync).
 *
 * ukvm models the protection and unsync state of those pages, not the EPT02
 * entries they would hold (spt is NULL): a page is a gfn, a level (of the
 * guest table it shadows) and an unsync flag, in a per-VM hash keyed by gfn
 * (mmu_page_hash) and on active_mmu_pages.
 *
 * Locking:
 *   - pages are created, synced and zapped only with mmu_lock held for write;
 *     the hash, the list and indirect_shadow_pages change only then, so a
 *     reader holding mmu_lock for read may walk them;
 *   - a TDP MMU fault holding mmu_lock for *read* may make a shadowed gfn
 *     writable: mmu_try_to_unsync_pages() marks its pages unsync under
 *     mmu_unsync_pages_lock, taken only when a page really is still sync
 *     and re-checked under it (unsync goes 1 -> 0 only under the write lock,
 *     so the unlocked "already unsync" test cannot be wrong the other way).
 *
 * The invariant (checked in debug builds when a page is synced and whenever
 * a TDP leaf becomes MMU-writable): a gfn shadowed by a page that is not
 * unsync has no MMU-writable leaf SPTE, hence no writable one, in any root.
 */
#include <errno.h>
#include <stdlib.h>

#include "sync/bug.h"
#include "sync/race.h"
#include "x86/mmu/mmu.h"
#include "x86/mmu/tdp_mmu.h"

static inline unsigned int kvm_page_table_hashfn(gfn_t gfn)
{
	return (unsigned int)((gfn * 0x9e3779b97f4a7c15ULL) >> (64 - KVM_MMU_HASH_SHIFT));
}

/* The indirect pages shadowing @gfn; mmu_lock held (read or write). */
#define for_each_gfn_shadow_page(kvm, sp, as_id, gfn)                         \
	for ((sp) = kvm_x86(kvm)->mmu_page_hash[kvm_page_table_hashfn(gfn)];  \
	     (sp); (sp) = (sp)->hash_next)                                    \
		if ((sp)->gfn != (gfn) || (int)(sp)->role.as_id != (as_id)) {} else

static inline bool sp_unsync(struct kvm_mmu_page *sp)
{
	return atomic_load_explicit(&sp->unsync, memory_order_relaxed);
}

void kvm_mmu_init_shadow(struct kvm *kvm)
{
	struct kvm_arch *ka = kvm_x86(kvm);

	CDS_INIT_LIST_HEAD(&ka->active_mmu_pages);
	__spin_lock_init(&ka->mmu_unsync_pages_lock, "&kvm->arch.mmu_unsync_pages_lock",
			 LOCKDEP_STATIC_KEY("&kvm->arch.mmu_unsync_pages_lock",
					    LD_TYPE_SPINLOCK));
}

struct kvm_mmu_page *kvm_mmu_find_shadow_page(struct kvm *kvm, int as_id,
					      gfn_t gfn, int level)
{
	struct kvm_mmu_page *sp;

	lockdep_assert_held(&kvm->mmu_lock);
	for_each_gfn_shadow_page(kvm, sp, as_id, gfn)
		if ((int)sp->role.level == level)
			return sp;
	return NULL;
}

/*
 * Upper-level guest tables are never unsync (KVM write-tracks them through
 * the page-track machinery).  Without an external tracker (KVMGT), the
 * per-slot write-track count is exactly "shadowed at a level above 4K":
 * ukvm derives it from the pages themselves.
 */
bool kvm_gfn_is_write_tracked(struct kvm *kvm, int as_id, gfn_t gfn)
{
	struct kvm_mmu_page *sp;

	lockdep_assert_held(&kvm->mmu_lock);
	for_each_gfn_shadow_page(kvm, sp, as_id, gfn)
		if (sp->role.level > PG_LEVEL_4K)
			return true;
	return false;
}

/*
 * account_shadowed(): from now on no huge mapping may cover the gfn and the
 * TDP MMU maps it read-only and not MMU-writable.  Returns whether a TLB
 * flush is needed before anybody relies on the protection.
 */
static bool account_shadowed(struct kvm *kvm, const struct kvm_memory_slot *slot,
			     struct kvm_mmu_page *sp)
{
	/*
	 * Seq-cst: the count is raised before the gfn's SPTEs are looked at,
	 * pairing with the fence in kvm_mmu_track_write(): an emulated write
	 * either sees the count or was done before we protect.
	 */
	atomic_fetch_add(&kvm_x86(kvm)->indirect_shadow_pages, 1);
	kvm_mmu_gfn_disallow_lpage(kvm, slot, sp->gfn, sp->lpage_disallowed);
	return kvm_tdp_mmu_write_protect_shadowed_gfn(kvm, (int)sp->role.as_id, sp->gfn);
}

static void unaccount_shadowed(struct kvm *kvm, struct kvm_mmu_page *sp)
{
	kvm_mmu_gfn_allow_lpage(kvm, sp->lpage_disallowed);
	atomic_fetch_sub(&kvm_x86(kvm)->indirect_shadow_pages, 1);
}

/*
 * Zap one page: it stops shadowing its gfn.  The gfn's TDP SPTE stays
 * read-only until the next write fault maps it writable again; no flush is
 * needed since ukvm keeps no SPTEs of the page itself (KVM would flush
 * before freeing it: kvm_mmu_commit_zap_page()).  Freed at once: only
 * mmu_lock holders ever reach a page.
 */
void kvm_mmu_zap_shadow_page(struct kvm *kvm, struct kvm_mmu_page *sp)
{
	struct kvm_arch *ka = kvm_x86(kvm);
	struct kvm_mmu_page **pp = &ka->mmu_page_hash[kvm_page_table_hashfn(sp->gfn)];

	lockdep_assert_held_write(&kvm->mmu_lock);
	UKVM_BUG_ON(sp->role.direct != 0);
	while (*pp != sp)
		pp = &(*pp)->hash_next;
	*pp = sp->hash_next;
	cds_list_del(&sp->link);
	if (sp_unsync(sp))
		atomic_fetch_sub_explicit(&ka->stat.mmu_unsync, 1, memory_order_relaxed);
	unaccount_shadowed(kvm, sp);
	atomic_fetch_add_explicit(&ka->stat.mmu_shadow_zapped, 1, memory_order_relaxed);
	free(sp);
}

/*
 * The page shadowing the guest table at @gfn, level @level; created (from
 * *@prealloc, which is then set to NULL) if there is none.  *@flush is set
 * when the new page's protection needs a TLB flush.  An upper-level table
 * zaps the unsync last-level pages of the same gfn: they would be left
 * stale behind the write protection.
 */
struct kvm_mmu_page *kvm_mmu_get_shadow_page(struct kvm *kvm,
					     const struct kvm_memory_slot *slot,
					     gfn_t gfn, int level,
					     struct kvm_mmu_page **prealloc,
					     bool *flush)
{
	struct kvm_arch *ka = kvm_x86(kvm);
	struct kvm_mmu_page *sp, *next;
	unsigned int bucket = kvm_page_table_hashfn(gfn);
	int as_id = slot->as_id;

	lockdep_assert_held_write(&kvm->mmu_lock);
	sp = kvm_mmu_find_shadow_page(kvm, as_id, gfn, level);
	if (sp)
		return sp;
	if (level > PG_LEVEL_4K) {
		for (sp = ka->mmu_page_hash[bucket]; sp; sp = next) {
			next = sp->hash_next;
			if (sp->gfn == gfn && (int)sp->role.as_id == as_id && sp_unsync(sp))
				kvm_mmu_zap_shadow_page(kvm, sp);
		}
	}

	sp = *prealloc;
	*prealloc = NULL;
	UKVM_BUG_ON(!sp);
	sp->role.word = 0;
	sp->role.level = (unsigned int)level;
	sp->role.as_id = (unsigned int)as_id;
	sp->role.direct = 0;
	sp->gfn = gfn;
	sp->kvm = kvm;
	atomic_init(&sp->unsync, false);
	sp->hash_next = ka->mmu_page_hash[bucket];
	ka->mmu_page_hash[bucket] = sp;
	cds_list_add(&sp->link, &ka->active_mmu_pages);
	if (account_shadowed(kvm, slot, sp))
		*flush = true;
	atomic_fetch_add_explicit(&ka->stat.mmu_cache_miss, 1, memory_order_relaxed);
	return sp;
}

/*
 * The sync: after the gfn was write-protected again and TLBs flushed, the
 * guest table can no longer change behind KVM's back; KVM would re-read it
 * into the shadow entries here.
 */
void kvm_mmu_sync_page(struct kvm *kvm, struct kvm_mmu_page *sp)
{
	struct kvm_arch *ka = kvm_x86(kvm);

	lockdep_assert_held_write(&kvm->mmu_lock);
	if (!sp_unsync(sp))
		return;
	UKVM_INVARIANT(!kvm_tdp_mmu_gfn_maybe_writable(kvm, (int)sp->role.as_id, sp->gfn),
		       "syncing the shadow page of gfn %#llx while it is still writable",
		       (unsigned long long)sp->gfn);
	atomic_store_explicit(&sp->unsync, false, memory_order_relaxed);
	atomic_fetch_sub_explicit(&ka->stat.mmu_unsync, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&ka->stat.mmu_syncs, 1, memory_order_relaxed);
}

/* Pages of [start, end) in @as_id (memslot deletion and move). */
void kvm_mmu_zap_shadow_range(struct kvm *kvm, int as_id, gfn_t start, gfn_t end)
{
	struct kvm_mmu_page *sp, *tmp;

	lockdep_assert_held_write(&kvm->mmu_lock);
	cds_list_for_each_entry_safe(sp, tmp, &kvm_x86(kvm)->active_mmu_pages, link)
		if ((int)sp->role.as_id == as_id && sp->gfn >= start && sp->gfn < end)
			kvm_mmu_zap_shadow_page(kvm, sp);
}

void kvm_mmu_zap_all_shadow(struct kvm *kvm)
{
	struct kvm_mmu_page *sp, *tmp;

	lockdep_assert_held_write(&kvm->mmu_lock);
	cds_list_for_each_entry_safe(sp, tmp, &kvm_x86(kvm)->active_mmu_pages, link)
		kvm_mmu_zap_shadow_page(kvm, sp);
	UKVM_INVARIANT(atomic_load(&kvm_x86(kvm)->indirect_shadow_pages) == 0,
		       "%ld indirect shadow pages left after zapping them all",
		       atomic_load(&kvm_x86(kvm)->indirect_shadow_pages));
}

/* Is some page shadowing a gfn of [gfn, gfn + nr_pages) still sync? */
bool kvm_mmu_range_has_sync_shadow_page(struct kvm *kvm, int as_id, gfn_t gfn,
					uint64_t nr_pages)
{
	struct kvm_mmu_page *sp;

	lockdep_assert_held(&kvm->mmu_lock);
	if (nr_pages == 1) {
		for_each_gfn_shadow_page(kvm, sp, as_id, gfn)
			if (!sp_unsync(sp))
				return true;
		return false;
	}
	cds_list_for_each_entry(sp, &kvm_x86(kvm)->active_mmu_pages, link)
		if ((int)sp->role.as_id == as_id && sp->gfn >= gfn &&
		    sp->gfn < gfn + nr_pages && !sp_unsync(sp))
			return true;
	return false;
}

static void kvm_unsync_page(struct kvm *kvm, struct kvm_mmu_page *sp)
{
	struct kvm_arch *ka = kvm_x86(kvm);

	lockdep_assert_held(&ka->mmu_unsync_pages_lock);
	/* What the re-check under the lock guarantees. */
	UKVM_INVARIANT(!sp_unsync(sp), "shadow page of gfn %#llx marked unsync twice",
		       (unsigned long long)sp->gfn);
	atomic_store_explicit(&sp->unsync, true, memory_order_relaxed);
	atomic_fetch_add_explicit(&ka->stat.mmu_unsync, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&ka->stat.unsync_pages, 1, memory_order_relaxed);
}

/*
 * The fault path is about to map @gfn writable at @level (make_spte()),
 * with mmu_lock held for read (TDP MMU) or write.  Mark the pages shadowing
 * it unsync, or refuse: -EPERM if the gfn is write-tracked or the mapping
 * would be huge, -EEXIST for a prefetch (never unsync speculatively).  On a
 * refusal the caller maps it read-only and not MMU-writable.
 */
int mmu_try_to_unsync_pages(struct kvm *kvm, const struct kvm_memory_slot *slot,
			    gfn_t gfn, int level, bool prefetch)
{
	struct kvm_arch *ka = kvm_x86(kvm);
	int as_id = slot ? slot->as_id : 0;
	struct kvm_mmu_page *sp;
	bool locked = false;
	int r = 0;

	lockdep_assert_held(&kvm->mmu_lock);
	/* Nothing shadowed: the common case costs one load. */
	if (!atomic_load_explicit(&ka->indirect_shadow_pages, memory_order_relaxed))
		return 0;

	if (level > PG_LEVEL_4K) {
		/*
		 * account_shadowed() disallows huge pages around a shadowed
		 * gfn and the level was chosen under mmu_lock, so this cannot
		 * happen; if it did, unsyncing only @gfn would not be enough.
		 */
		if (UKVM_WARN_ON(kvm_mmu_range_has_sync_shadow_page(kvm, as_id, gfn,
						KVM_PAGES_PER_HPAGE(level))))
			r = -EPERM;
		goto out;
	}
	if (kvm_gfn_is_write_tracked(kvm, as_id, gfn)) {
		r = -EPERM;
		goto out;
	}

	for_each_gfn_shadow_page(kvm, sp, as_id, gfn) {
		/* Unlocked: a page seen unsync stays unsync while we hold mmu_lock. */
		if (sp_unsync(sp))
			continue;
		if (prefetch) {
			r = -EEXIST;
			break;
		}
		if (!locked) {
			RACE_POINT(UNSYNC_BEFORE_LOCK);
			locked = true;
			spin_lock(&ka->mmu_unsync_pages_lock);
			atomic_fetch_add_explicit(&ka->stat.mmu_unsync_locked, 1,
						  memory_order_relaxed);
			/* Another vCPU's fault may have unsynced it meanwhile. */
			if (sp_unsync(sp) && !ukvm_unsafe(UNSAFE_NO_UNSYNC_RECHECK)) {
				atomic_fetch_add_explicit(&ka->stat.mmu_unsync_recheck, 1,
							  memory_order_relaxed);
				continue;
			}
		}
		UKVM_BUG_ON(sp->role.level != PG_LEVEL_4K);
		kvm_unsync_page(kvm, sp);
	}
	if (locked)
		spin_unlock(&ka->mmu_unsync_pages_lock);
	/* The unsync marks are visible before the SPTE that makes it writable. */
	atomic_thread_fence(memory_order_release);
out:
	if (r)
		atomic_fetch_add_explicit(&ka->stat.mmu_unsync_refused, 1,
					  memory_order_relaxed);
	return r;
}
