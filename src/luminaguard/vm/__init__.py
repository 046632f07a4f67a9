"""Micro-VMs: a kernel of their own for each sandbox (the isolation tier below gVisor).

``image.py`` builds the guest (kernel, initramfs, the static guest agent in
``agent.c``); ``qemu.py`` boots it under QEMU's ``microvm`` machine (KVM on a
host with hardware virtualisation, TCG elsewhere, chosen by a timed boot
probe), talks to the agent over virtio-serial, and saves and restores
snapshots, from which clones start in a fraction of a boot.
"""
