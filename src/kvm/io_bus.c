// SPDX-License-Identifier: MIT
/*
 * In-kernel I/O buses (MMIO and PIO device ranges), kvm-brief.md 9.5.
 *
 * A bus is a sorted, copy-on-write array published in kvm->buses[]: writers
 * hold kvm->slots_lock, build a new array, publish it and free the old one
 * after an SRCU grace period; vCPUs look devices up inside kvm->srcu.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "kvm/kvm_internal.h"
#include "sync/bug.h"

#define KVM_MAX_IO_DEVICES 1000

static struct kvm_io_bus *kvm_get_bus(struct kvm *kvm, enum kvm_bus idx)
{
	return srcu_dereference_check(kvm->buses[idx], &kvm->srcu,
				      lockdep_is_held(&kvm->slots_lock) ==
				      LOCK_STATE_HELD);
}

int kvm_init_io_buses(struct kvm *kvm)
{
	for (int i = 0; i < KVM_NR_BUSES; i++) {
		kvm->buses[i] = calloc(1, sizeof(struct kvm_io_bus));
		if (!kvm->buses[i]) {
			kvm_free_io_buses(kvm);
			return -ENOMEM;
		}
	}
	return 0;
}

void kvm_free_io_buses(struct kvm *kvm)
{
	for (int i = 0; i < KVM_NR_BUSES; i++) {
		free(kvm->buses[i]);
		kvm->buses[i] = NULL;
	}
}

static bool ranges_overlap(gpa_t a, int alen, gpa_t b, int blen)
{
	return a < b + (gpa_t)blen && b < a + (gpa_t)alen;
}

/* Publish @new, holding @nr ranges, in place of @old; free @old once no reader has it. */
static void kvm_io_bus_replace(struct kvm *kvm, enum kvm_bus bus_idx,
			       struct kvm_io_bus *old, struct kvm_io_bus *new, int nr)
{
	new->dev_count = nr;
	ukvm_rcu_assign_pointer(kvm->buses[bus_idx], new);
	synchronize_srcu_expedited(&kvm->srcu);
	free(old);
}

int kvm_io_bus_register_dev(struct kvm *kvm, enum kvm_bus bus_idx, gpa_t addr,
			    int len, struct kvm_io_device *dev)
{
	struct kvm_io_bus *bus, *new;
	int i, j;

	lockdep_assert_held(&kvm->slots_lock);
	if (bus_idx >= KVM_NR_BUSES || len <= 0 || !dev)
		return -EINVAL;
	bus = kvm_get_bus(kvm, bus_idx);
	if (bus->dev_count >= KVM_MAX_IO_DEVICES)
		return -ENOSPC;
	for (i = 0; i < bus->dev_count; i++)
		if (ranges_overlap(addr, len, bus->range[i].addr, bus->range[i].len))
			return -EEXIST;

	new = malloc(sizeof(*new) + (size_t)(bus->dev_count + 1) * sizeof(new->range[0]));
	if (!new)
		return -ENOMEM;
	/* Insert in address order. */
	for (i = 0, j = 0; i < bus->dev_count && bus->range[i].addr < addr; i++)
		new->range[j++] = bus->range[i];
	new->range[j++] = (struct kvm_io_range){ addr, len, dev };
	for (; i < bus->dev_count; i++)
		new->range[j++] = bus->range[i];
	kvm_io_bus_replace(kvm, bus_idx, bus, new, j);
	return 0;
}

int kvm_io_bus_unregister_dev(struct kvm *kvm, enum kvm_bus bus_idx,
			      struct kvm_io_device *dev)
{
	struct kvm_io_bus *bus, *new;
	int i, j;

	lockdep_assert_held(&kvm->slots_lock);
	if (bus_idx >= KVM_NR_BUSES)
		return -EINVAL;
	bus = kvm_get_bus(kvm, bus_idx);
	for (i = 0; i < bus->dev_count && bus->range[i].dev != dev; i++)
		;
	if (i == bus->dev_count)
		return -ENOENT;
	new = malloc(sizeof(*new) + (size_t)bus->dev_count * sizeof(new->range[0]));
	if (!new)
		return -ENOMEM;
	for (i = 0, j = 0; i < bus->dev_count; i++)
		if (bus->range[i].dev != dev)
			new->range[j++] = bus->range[i];
	kvm_io_bus_replace(kvm, bus_idx, bus, new, j);
	return 0;
}

/* Binary search for the device covering [addr, addr + len). */
static const struct kvm_io_range *bus_find(const struct kvm_io_bus *bus,
					   gpa_t addr, int len)
{
	int lo = 0, hi = bus->dev_count - 1;

	while (lo <= hi) {
		int mid = lo + (hi - lo) / 2;
		const struct kvm_io_range *r = &bus->range[mid];

		if (addr < r->addr)
			hi = mid - 1;
		else if (addr >= r->addr + (gpa_t)r->len)
			lo = mid + 1;
		else
			return addr + (gpa_t)len <= r->addr + (gpa_t)r->len ? r : NULL;
	}
	return NULL;
}

/* The device covering [addr, addr + len) on @bus_idx, inside kvm->srcu. */
static const struct kvm_io_range *io_bus_lookup(struct kvm_vcpu *vcpu,
						enum kvm_bus bus_idx, gpa_t addr,
						int len)
{
	struct kvm_io_bus *bus;

	bus = srcu_dereference(vcpu->kvm->buses[bus_idx], &vcpu->kvm->srcu);
	return bus ? bus_find(bus, addr, len) : NULL;
}

int kvm_io_bus_write(struct kvm_vcpu *vcpu, enum kvm_bus bus_idx, gpa_t addr,
		     int len, const void *val)
{
	const struct kvm_io_range *r = io_bus_lookup(vcpu, bus_idx, addr, len);

	if (!r || !r->dev->ops->write)
		return -EOPNOTSUPP;
	return r->dev->ops->write(vcpu, r->dev, addr, len, val);
}

int kvm_io_bus_read(struct kvm_vcpu *vcpu, enum kvm_bus bus_idx, gpa_t addr,
		    int len, void *val)
{
	const struct kvm_io_range *r = io_bus_lookup(vcpu, bus_idx, addr, len);

	if (!r || !r->dev->ops->read)
		return -EOPNOTSUPP;
	return r->dev->ops->read(vcpu, r->dev, addr, len, val);
}
