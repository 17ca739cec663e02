from embedbench.memory import available_bytes, cgroup_room

GIB = 1 << 30


def cgroup(folder, limit, usage, reclaimable, version=2):
    names = ("memory.max", "memory.current", "inactive_file") if version == 2 else \
        ("memory.limit_in_bytes", "memory.usage_in_bytes", "total_inactive_file")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / names[0]).write_text(f"{limit}\n")
    (folder / names[1]).write_text(f"{usage}\n")
    (folder / "memory.stat").write_text(f"anon {usage - reclaimable}\n{names[2]} {reclaimable}\n")


def test_the_room_is_the_least_left_under_the_own_cgroup_and_those_above_it(tmp_path):
    proc = tmp_path / "cgroup"
    proc.write_text("0::/job_1/step_0\n")
    mount = tmp_path / "fs"
    cgroup(mount / "job_1", 8 * GIB, 5 * GIB, 1 * GIB)  # Slurm's limit sits on the job; file pages reclaimable
    cgroup(mount / "job_1" / "step_0", "max", 3 * GIB, 0)
    assert cgroup_room(proc, mount) == 4 * GIB
    cgroup(mount / "job_1" / "step_0", 2 * GIB, 1 * GIB, 0)
    assert cgroup_room(proc, mount) == 1 * GIB


def test_cgroup_v1_and_a_container_whose_mount_is_its_own_cgroup(tmp_path):
    proc = tmp_path / "cgroup"
    proc.write_text("4:memory:/docker/abc\n3:cpu:/docker/abc\n0::/\n")
    mount = tmp_path / "fs"
    cgroup(mount / "memory", 6 * GIB, 2 * GIB, 0, version=1)  # /docker/abc is not there: the namespaced root
    assert cgroup_room(proc, mount) == 4 * GIB
    cgroup(mount / "memory", 9223372036854771712, 2 * GIB, 0, version=1)  # v1's "no limit"
    assert cgroup_room(proc, mount) is None


def test_no_cgroup_limit_leaves_the_machines_available_memory(tmp_path):
    import psutil

    assert cgroup_room(tmp_path / "absent", tmp_path) is None
    assert 0 < available_bytes() <= psutil.virtual_memory().total
