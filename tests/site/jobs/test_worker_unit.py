"""The worker is one unit: SIGKILL of `qcluster`'s main process leaves no process of it (nor
an engine stage it was running), runsite starts the worker again, and django-q2's `qinfo`
sees the cluster through the shared cache."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from django.utils import timezone
from django_q.status import Stat

from pipeline.backends.local import LocalBackend
from pipeline.jobs.services import JobOptions, job_start
from pipeline.jobs.transitions import job_enqueue
from pipeline.models import Job
from products.models import Product
from tests.conftest import ROOT, wait_for
from tests.site.jobs_fixtures import add_photos_from, delete_photo_files, storage
from tests.synthetic_scene import make_scene

__all__ = ["storage"]


def descendants(pid: int) -> list[psutil.Process]:
    return psutil.Process(pid).children(recursive=True)


def all_gone(procs: list[psutil.Process]) -> bool:
    """None of these processes runs any more (a zombie our test has not reaped counts as
    gone: it runs nothing)."""
    for proc in procs:
        try:
            if proc.status() != psutil.STATUS_ZOMBIE:
                return False
        except psutil.NoSuchProcess:
            continue
    return True


def cluster_of(pid: int) -> Stat | None:
    """django-q2's published status of the cluster whose main process is `pid`."""
    return next((stat for stat in Stat.get_all() if stat.pid == pid), None)


def test_qinfo_sees_the_running_cluster(qcluster, worker_env):
    stat = wait_for(lambda: cluster_of(qcluster.pid), timeout=60,
                    what="the cluster to publish its status")

    def qinfo_ids() -> str:
        done = subprocess.run([sys.executable, "manage.py", "qinfo", "--ids"], cwd=ROOT,
                              env=worker_env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout

    def listing() -> str | None:
        # One qinfo call per try: the cluster's status lives in the cache for 3 s between
        # heartbeats, so on a loaded machine one call may miss it and the next one see it.
        listed = qinfo_ids()
        return listed if str(stat.cluster_id) in listed else None

    wait_for(listing, timeout=60, what="qinfo to list the cluster")


@pytest.fixture
def product(django_user_model) -> Iterator[Product]:
    owner = django_user_model.objects.create_user("shop")
    product = Product.objects.create(owner=owner, name="Box and ball", sku="BOX-1")
    yield product
    delete_photo_files(product)


def training_job(product: Product, tmp_path: Path) -> Job:
    """A queued job whose poses are done (true poses written into its workspace), set to
    train far longer than the test lasts."""
    scene = make_scene(tmp_path / "scene", n_views=8, width=96, height=72)
    add_photos_from(product, scene.images_dir)
    job = job_start(product, JobOptions(preset="test", iterations=100_000, frame_count=4,
                                        frame_size=48), backend="local", enqueue=False)
    scene.write_ground_truth_workspace(LocalBackend().workspace(str(job.pk)))
    now = timezone.now()
    Job.objects.filter(pk=job.pk).update(colmap_started_at=now, colmap_finished_at=now)
    job.refresh_from_db()
    return job


def training_engine(job: Job) -> int | None:
    """The pid of the job's engine stage once it trains."""
    job.refresh_from_db()
    handle = job.backend_state.get("handle")
    if job.stage == "train" and job.stage_progress > 0 and handle:
        return int(handle["pid"])
    return None


@pytest.fixture
def job_cluster(worker_env, storage, tmp_path) -> Iterator[subprocess.Popen]:
    """A real qcluster that runs jobs on this test's storage, on the CPU."""
    with (tmp_path / "qcluster.log").open("w") as log:
        proc = subprocess.Popen([sys.executable, "manage.py", "qcluster"], cwd=ROOT,
                                env={**worker_env, **storage, "NERF_DEVICE": "cpu"},
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    yield proc
    if proc.poll() is None:  # the test failed before its kill
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@pytest.mark.slow
def test_sigkill_of_the_worker_mid_stage_leaves_no_process_of_it(product, job_cluster,
                                                                 tmp_path):
    job = training_job(product, tmp_path)
    job_enqueue(job=job)
    engine = wait_for(lambda: training_engine(job), timeout=180, what="training to run")
    tree = descendants(job_cluster.pid)
    assert engine in {proc.pid for proc in tree}  # the engine is the worker's child
    assert len(tree) >= 5  # sentinel, a worker, monitor, pusher, the engine (and its own)

    job_cluster.send_signal(signal.SIGKILL)
    job_cluster.wait()
    wait_for(lambda: all_gone(tree), timeout=30, what="every process of the worker to end")


@pytest.fixture
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_runsite_starts_a_killed_worker_again_and_stops_everything_on_sigterm(
        worker_env, free_port, tmp_path):
    log = (tmp_path / "runsite.log").open("w")
    site = subprocess.Popen([sys.executable, "manage.py", "runsite", f"127.0.0.1:{free_port}"],
                            cwd=ROOT, env=worker_env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        def worker_pid() -> int | None:
            for child in psutil.Process(site.pid).children():
                try:
                    if "qcluster" in child.cmdline() and cluster_of(child.pid):
                        return child.pid
                except psutil.Error:  # the killed worker, until runsite reaps it
                    continue
            return None

        first = wait_for(worker_pid, timeout=90, what="runsite's worker to run")
        first_tree = [psutil.Process(first), *descendants(first)]
        os.kill(first, signal.SIGKILL)
        wait_for(lambda: all_gone(first_tree), timeout=30,
                 what="every process of the killed worker to end")
        second = wait_for(lambda: (pid := worker_pid()) and pid != first and pid,
                          timeout=90, what="runsite to start the worker again")
        assert site.poll() is None  # the web server stayed up meanwhile

        everything = [psutil.Process(site.pid), *descendants(site.pid)]
        assert second in {proc.pid for proc in everything}
        site.send_signal(signal.SIGTERM)
        assert site.wait(timeout=60) == 0
        wait_for(lambda: all_gone(everything), timeout=30, what="nothing of runsite to run")
    finally:
        if site.poll() is None:
            os.killpg(site.pid, signal.SIGKILL)
            site.wait()
        log.close()
    assert "The worker exited (-9); starting it again." in (tmp_path / "runsite.log").read_text()


def test_sigkill_of_runsite_leaves_neither_web_server_nor_worker(worker_env, free_port,
                                                                 tmp_path):
    with (tmp_path / "runsite.log").open("w") as log:
        site = subprocess.Popen([sys.executable, "manage.py", "runsite",
                                 f"127.0.0.1:{free_port}"], cwd=ROOT, env=worker_env,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        def running() -> list[psutil.Process] | None:
            tree = descendants(site.pid)
            workers = [p for p in tree if p.ppid() == site.pid and cluster_of(p.pid)]
            return tree if workers and len(tree) >= 3 else None  # web, worker and its own

        everything = wait_for(running, timeout=90, what="runsite's web server and worker")
        site.send_signal(signal.SIGKILL)
        site.wait()
        wait_for(lambda: all_gone(everything), timeout=30,
                 what="the web server and the worker to die with runsite")
    finally:
        if site.poll() is None:
            site.kill()
            site.wait()
