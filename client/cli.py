"""``strom``: run jobs on a cluster and look after them, with the flags of Flink's CLI.

strom run [-p N] [-d] [-s savepoint [-n]] [-m host:port] [-D key=value]
          [-pyfs files] [-pyarch zips] [-pyreq requirements.txt] job.py [args...]
strom run ... -pym module -pyfs files [args...]
strom list [-r] [-s] [-a]
strom cancel [-w seconds] <jobid>
strom info job.py [args...]
strom cluster
strom certs [--host H ...] <dir>
"""

from __future__ import annotations

import argparse
import os
import runpy
import sys
import tempfile
import time
import traceback
from datetime import datetime
from pathlib import Path

from client.gateway import ClusterClient
from strom.configuration import (
    check_job_settings,
    load_configuration,
    parse_dynamic_properties,
)
from strom.datastream import execution_context
from strom.errors import ClusterUnreachableError, JobExecutionError, StromError

_RULE = "-" * 62


def _jobmanager_address(args: argparse.Namespace) -> str:
    if getattr(args, "jobmanager", None):
        address = args.jobmanager
        if ":" not in address:
            raise StromError(f"-m takes host:port; got '{address}'")
        return address
    dynamic = parse_dynamic_properties(getattr(args, "dynamic", None) or [])
    config = load_configuration(overrides={k: v for k, v in dynamic.items()})
    if config["high-availability.type"] == "zookeeper":
        from jobmanager.ha.services import find_leader_address

        leader = find_leader_address(config)
        if leader is None:
            raise ClusterUnreachableError(
                "no JobManager leads: ZooKeeper at "
                f"{config['high-availability.zookeeper.quorum']} names none (is the cluster "
                "running?)"
            )
        return leader
    return config.jobmanager_address


def _leader_finder(args: argparse.Namespace):
    """With high availability (and no -m), a function that finds the current leader."""
    if getattr(args, "jobmanager", None):
        return None
    dynamic = parse_dynamic_properties(getattr(args, "dynamic", None) or [])
    config = load_configuration(overrides={k: v for k, v in dynamic.items()})
    if config["high-availability.type"] != "zookeeper":
        return None
    from jobmanager.ha.services import find_leader_address

    return lambda: find_leader_address(config, timeout=5.0)


def _add_cluster_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-m",
        "--jobmanager",
        metavar="HOST:PORT",
        help="the JobManager to talk to (default: jobmanager.rpc.address/port of the config)",
    )
    parser.add_argument(
        "-D",
        dest="dynamic",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a configuration setting, e.g. -D execution.buffer-timeout=10ms",
    )


def _version() -> str:
    import platform

    import strom

    return f"Strom {strom.__version__} (Python {platform.python_version()})"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="strom", description="Run and manage Strom jobs on a cluster."
    )
    parser.add_argument("-v", "--version", action="version", version=_version())
    commands = parser.add_subparsers(dest="command", metavar="<action>")

    run = commands.add_parser(
        "run",
        help="run a job program on the cluster",
        description="Run a job program on the cluster. What the job ships to the "
        "TaskManagers is its script's folder and what -pyfs, -pyarch and -pyreq name, "
        "within client.job-files.max-size.",
    )
    _add_cluster_options(run)
    run.add_argument("-p", "--parallelism", type=int, help="the job's default parallelism")
    run.add_argument("-d", "--detached", action="store_true", help="return once submitted")
    run.add_argument("-s", "--fromSavepoint", dest="savepoint", help="restore from a savepoint")
    run.add_argument(
        "-n", "--allowNonRestoredState", action="store_true", help="skip state of missing operators"
    )
    run.add_argument("-py", "--python", dest="python_file", help="the job's Python file")
    run.add_argument(
        "-pym",
        "--pyModule",
        dest="python_module",
        metavar="MODULE",
        help="the job's entry module, found in what -pyfs names",
    )
    run.add_argument(
        "-pyfs",
        "--pyFiles",
        dest="python_files",
        action="append",
        default=[],
        metavar="FILES",
        help="comma-separated .py files, folders and .zip/.whl/.egg files the job imports "
        "from; they go on its path in the client and on the TaskManagers",
    )
    run.add_argument(
        "-pyreq",
        "--pyRequirements",
        dest="python_requirements",
        metavar="FILE[#CACHE]",
        help="a requirements.txt installed for the job (offline from CACHE when given) and "
        "shipped with it; the cluster must run the client's Python version and platform",
    )
    run.add_argument(
        "-pyarch",
        "--pyArchives",
        dest="python_archives",
        action="append",
        default=[],
        metavar="ZIP[#TARGET]",
        help="comma-separated zip archives unpacked into the job's folder on the "
        "TaskManagers under TARGET (default: the archive's file name)",
    )
    run.add_argument(
        "-pyexec",
        "--pyExecutable",
        dest="python_executable",
        metavar="PATH",
        help="the Python interpreter the job's functions run in on the TaskManagers (Flink's "
        "python.executable), e.g. a virtualenv's; an absolute path, present on the client and "
        "every TaskManager, of the client's Python version",
    )
    run.add_argument("program", nargs="?", help="the job's Python file")
    run.add_argument("arguments", nargs=argparse.REMAINDER, help="arguments for the program")

    listing = commands.add_parser("list", help="list running and scheduled jobs")
    _add_cluster_options(listing)
    listing.add_argument("-r", "--running", action="store_true", help="only running jobs")
    listing.add_argument("-s", "--scheduled", action="store_true", help="only scheduled jobs")
    listing.add_argument("-a", "--all", action="store_true", help="all jobs, ended ones too")

    cancel = commands.add_parser(
        "cancel",
        help="cancel a job",
        description="Ask the JobManager to cancel a job, then wait for its final state. Its "
        "tasks are interrupted; a task that ignores that past task.cancellation.timeout has "
        "its slot process killed.",
    )
    _add_cluster_options(cancel)
    cancel.add_argument(
        "-w",
        "--wait",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="how long to wait for the final state (0: return once requested; default 60)",
    )
    cancel.add_argument("job_id")

    info = commands.add_parser("info", help="print a job program's plan as JSON")
    info.add_argument("-p", "--parallelism", type=int)
    info.add_argument("program")
    info.add_argument("arguments", nargs=argparse.REMAINDER)

    savepoint = commands.add_parser("savepoint", help="take a savepoint of a job, or dispose one")
    _add_cluster_options(savepoint)
    savepoint.add_argument("-d", "--dispose", metavar="PATH", help="delete this savepoint")
    savepoint.add_argument("job_id", nargs="?")
    savepoint.add_argument("target_directory", nargs="?")

    stop = commands.add_parser("stop", help="stop a job with a savepoint")
    _add_cluster_options(stop)
    stop.add_argument(
        "-p", "--savepointPath", "--savepoint-path", dest="savepoint_path", metavar="DIR"
    )
    stop.add_argument("-d", "--drain", action="store_true", help="end event time first")
    stop.add_argument("job_id")

    cluster = commands.add_parser("cluster", help="show the TaskManagers and free slots")
    _add_cluster_options(cluster)

    certs = commands.add_parser(
        "certs",
        help="make a CA and certificates for internal mutual TLS",
        description="Make a cluster CA in DIR (kept if DIR has one) and a certificate signed "
        "by it for each host of conf/masters and conf/slaves and for clients, then print the "
        "configuration lines that turn security.ssl.internal on.",
    )
    certs.add_argument("folder", metavar="DIR")
    certs.add_argument(
        "--host",
        action="append",
        default=[],
        help="a host to make a certificate for, as JobManager and TaskManager (default: those "
        "of conf/masters, as JobManagers, and conf/slaves, as TaskManagers; repeatable)",
    )
    return parser


# ------------------------------------------------------------------ run / info


def _run_program(program: str, arguments: list[str], path_entries: list[str] = ()) -> None:
    path = Path(program)
    if not path.is_file():
        raise StromError(f"the job file '{program}' does not exist")
    if path.suffix != ".py":
        raise StromError(f"the job file '{program}' is not a Python file (.py)")
    saved_argv, saved_path = sys.argv, list(sys.path)
    sys.argv = [str(path)] + list(arguments)
    sys.path[:0] = [str(path.resolve().parent), *path_entries]
    try:
        runpy.run_path(str(path), run_name="__main__")
    finally:
        sys.argv, sys.path[:] = saved_argv, saved_path


def _run_module(module: str, arguments: list[str], path_entries: list[str]) -> None:
    saved_argv, saved_path = sys.argv, list(sys.path)
    sys.argv = [module] + list(arguments)
    sys.path[:0] = path_entries
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except ImportError as error:
        if getattr(error, "name", None) and module.startswith(error.name):
            raise StromError(
                f"-pym: no module '{module}' in what -pyfs names ({', '.join(path_entries)})"
            ) from None
        raise
    finally:
        sys.argv, sys.path[:] = saved_argv, saved_path


def _split(values: list[str]) -> list[str]:
    return [item.strip() for value in values for item in value.split(",") if item.strip()]


def _python_path_entries(python_files: list[str]) -> list[str]:
    """Where the client imports -pyfs entries from: a folder, a zip, or a file's folder."""
    entries = []
    for entry in python_files:
        path = Path(entry).resolve()
        entries.append(str(path.parent if path.is_file() and path.suffix == ".py" else path))
    return entries


def _check_python_executable(executable: str | None) -> str | None:
    """-pyexec: the interpreter the job's slot processes start with on the TaskManagers
    (python.executable); its absolute path. Refused at once, with the reason, when it cannot
    run the job: the client pickles the job's functions, so it must be the client's Python
    version, and Strom ships no interpreter with a job (PyFlink's ``venv.zip/bin/python``
    inside a -pyarch archive)."""
    if not executable:
        return None
    import shutil
    import subprocess

    if not os.path.isabs(executable) and os.sep in executable:
        raise StromError(
            f"-pyexec: '{executable}' is a relative path: Strom does not run an interpreter "
            "shipped with the job (inside a -pyarch archive); install it on the TaskManagers "
            "and give its absolute path"
        )
    found = shutil.which(executable) or (executable if Path(executable).is_file() else None)
    if found is None:
        raise StromError(f"-pyexec: '{executable}' is not an executable")
    found = os.path.abspath(found)
    probe = subprocess.run(
        [found, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
        capture_output=True,
        text=True,
    )
    mine = f"{sys.version_info[0]}.{sys.version_info[1]}"
    if probe.returncode != 0 or probe.stdout.strip() != mine:
        raise StromError(
            f"-pyexec: '{executable}' runs Python {probe.stdout.strip() or '?'}, the client "
            f"Python {mine}. The client pickles the job's functions with its own version; "
            "run strom with the Python the job needs, or name an interpreter of this version"
        )
    return found


def _command_run(args: argparse.Namespace) -> int:
    program = args.python_file or args.program
    arguments = args.arguments
    if args.python_module:
        if args.python_file:
            raise StromError("give either -py or -pym, not both")
        if args.program:
            arguments = [args.program] + arguments
        program = None
    elif not program:
        raise StromError(
            "strom run needs a job: strom run [options] job.py [args...], -py job.py or "
            "-pym module -pyfs files"
        )
    elif args.python_file and args.program:
        arguments = [args.program] + arguments
    python_files = _split(args.python_files)
    if args.python_module and not python_files:
        raise StromError("-pym needs -pyfs naming where the module is, as in PyFlink")
    python_executable = _check_python_executable(args.python_executable)
    if args.python_requirements:
        from client.packaging import install_requirements

        staging = tempfile.TemporaryDirectory(prefix="strom-pyreq-")
        cleanup_staging = staging.cleanup
        install_requirements(args.python_requirements, staging.name)
        python_files.append(staging.name)  # shipped, and on the client's path
    else:
        cleanup_staging = None
    address = _jobmanager_address(args)
    dynamic = check_job_settings(parse_dynamic_properties(args.dynamic), "-D")
    if python_executable:
        dynamic["python.executable"] = python_executable  # as PyFlink's -pyexec
    client_config = load_configuration(overrides=dynamic)
    with ClusterClient(address) as cluster:
        overview = cluster.overview()  # fail plainly now if there is no cluster
    if args.parallelism is not None and args.parallelism < 1:
        raise StromError(f"-p takes a parallelism of at least 1; got {args.parallelism}")
    context = execution_context.ExecutionContext(
        target="remote",
        jobmanager=address,
        parallelism=args.parallelism,
        detached=args.detached,
        config=dynamic,
        cluster_config=dict(overview.job_defaults),
        savepoint_path=args.savepoint,
        allow_non_restored_state=args.allowNonRestoredState,
        python_files=python_files,
        python_archives=_split(args.python_archives),
        job_files_max_bytes=client_config["client.job-files.max-size"],
        progress_interval_s=client_config["client.progress.interval"] / 1000.0,
        find_leader=_leader_finder(args),
    )
    path_entries = _python_path_entries(python_files)
    previous = execution_context.set_current(context)
    try:
        if program is None:
            _run_module(args.python_module, arguments, path_entries)
        else:
            _run_program(program, arguments, path_entries)
    except JobExecutionError as error:
        print(_RULE, file=sys.stderr)
        print(" The program finished with the following exception:\n", file=sys.stderr)
        print(str(error), file=sys.stderr)
        if "ModuleNotFoundError" in str(error):
            print(
                "\nA module the job uses could not be imported where it ran. Modules beside "
                "the script ship with it; ship others with -pyfs (a .py file, folder or zip) "
                "or -pyreq (a requirements file).",
                file=sys.stderr,
            )
        return 1
    except SystemExit as exit_:
        if exit_.code not in (None, 0):
            return exit_.code if isinstance(exit_.code, int) else 1
    except StromError:
        raise
    except Exception:
        print(" The program failed before or after its job ran:\n", file=sys.stderr)
        traceback.print_exc()
        return 1
    finally:
        execution_context.set_current(previous)
        if cleanup_staging is not None:
            cleanup_staging()
    if not context.submitted:
        print("The program ran but submitted no job (did it call env.execute()?).")
        return 1
    if not args.detached:
        if context.find_leader is not None:  # the leader may have changed while it ran
            address = context.find_leader() or address
        with ClusterClient(address) as cluster:
            for job_id in context.submitted:
                details = cluster.job(job_id)
                print("Program execution finished")
                print(f"Job with JobID {job_id} has finished.")
                print(f"Job Runtime: {details.summary.duration} ms")
    return 0


def _command_info(args: argparse.Namespace) -> int:
    from client.executor import PlanRequested

    context = execution_context.ExecutionContext(target="plan", parallelism=args.parallelism)
    previous = execution_context.set_current(context)
    try:
        _run_program(args.program, args.arguments)
    except PlanRequested as plan:
        print("----------------------- Execution Plan -----------------------")
        print(plan.plan_json)
        print(_RULE)
        return 0
    finally:
        execution_context.set_current(previous)
    print("The program did not call env.execute(); there is no plan to show.", file=sys.stderr)
    return 1


# ------------------------------------------------------------------ list / cancel / cluster


def _format_job(job) -> str:
    started = datetime.fromtimestamp(job.start_time / 1000).strftime("%d.%m.%Y %H:%M:%S")
    return f"{started} : {job.job_id} : {job.name} ({job.state})"


def _command_list(args: argparse.Namespace) -> int:
    print("Waiting for response...")
    with ClusterClient(_jobmanager_address(args)) as cluster:
        jobs = sorted(cluster.jobs(), key=lambda j: j.start_time)
    running = [j for j in jobs if j.state in ("RUNNING", "FAILING", "CANCELLING", "RESTARTING")]
    scheduled = [j for j in jobs if j.state in ("CREATED", "INITIALIZING")]
    terminated = [j for j in jobs if j.state in ("FINISHED", "FAILED", "CANCELED")]
    show_running = args.running or args.all or not args.scheduled
    show_scheduled = args.scheduled or args.all or not args.running
    if show_running:
        if running:
            print("------------------ Running/Restarting Jobs -------------------")
            for job in running:
                print(_format_job(job))
            print(_RULE)
        else:
            print("No running jobs.")
    if show_scheduled:
        if scheduled:
            print("----------------------- Scheduled Jobs -----------------------")
            for job in scheduled:
                print(_format_job(job))
            print(_RULE)
        else:
            print("No scheduled jobs.")
    if args.all:
        if terminated:
            print("---------------------- Terminated Jobs -----------------------")
            for job in terminated:
                print(_format_job(job))
            print(_RULE)
        else:
            print("No terminated jobs.")
    return 0


def _command_cancel(args: argparse.Namespace) -> int:
    with ClusterClient(_jobmanager_address(args)) as cluster:
        cluster.cancel(args.job_id)
        print(f"Cancellation requested for job {args.job_id}.", flush=True)
        if args.wait <= 0:
            return 0
        deadline = time.monotonic() + args.wait
        state = cluster.job(args.job_id).summary.state
        while state not in ("CANCELED", "FINISHED", "FAILED"):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                print(
                    f"Job {args.job_id} is still {state} after {args.wait:g} s; its tasks have "
                    "not ended (see task.cancellation.timeout). strom list shows when it does.",
                    file=sys.stderr,
                )
                return 1
            state = cluster.await_job(args.job_id, timeout_s=min(remaining, 5.0)).summary.state
    print(f"Job {args.job_id} is {state}.")
    return 0


def _await_savepoint(cluster: ClusterClient, job_id: str, trigger_id: str) -> str:
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        status = cluster.savepoint(job_id, trigger_id)
        if status.state == "COMPLETED":
            if status.failure:
                raise StromError(f"the savepoint failed: {status.failure}")
            return status.location
        time.sleep(0.1)  # polling the JobManager for the savepoint's end
    raise StromError("the savepoint did not complete within 10 minutes")


def _command_savepoint(args: argparse.Namespace) -> int:
    if args.dispose:
        from strom.checkpoint_storage import storage_for

        storage = storage_for(None)
        if storage.read_metadata(args.dispose) is None:
            raise StromError(f"'{args.dispose}' is not a savepoint (it has no _metadata)")
        print(f"Disposing savepoint '{args.dispose}'.")
        storage.discard(args.dispose)
        print(f"Savepoint '{args.dispose}' disposed.")
        return 0
    if not args.job_id:
        raise StromError("strom savepoint needs a job id: strom savepoint <jobid> [dir]")
    with ClusterClient(_jobmanager_address(args)) as cluster:
        print(f"Triggering savepoint for job {args.job_id}.")
        print("Waiting for response...")
        trigger_id = cluster.trigger_savepoint(args.job_id, _absolute(args.target_directory))
        location = _await_savepoint(cluster, args.job_id, trigger_id)
    print(f"Savepoint completed. Path: file:{location}")
    print("You can resume your program from this savepoint with the run command.")
    return 0


def _command_stop(args: argparse.Namespace) -> int:
    with ClusterClient(_jobmanager_address(args)) as cluster:
        print(f"Suspending job {args.job_id}.")
        trigger_id = cluster.trigger_savepoint(
            args.job_id, _absolute(args.savepoint_path), then="stop"
        )
        location = _await_savepoint(cluster, args.job_id, trigger_id)
    print(f"Savepoint completed. Path: file:{location}")
    return 0


def _absolute(path: str | None) -> str | None:
    return os.path.abspath(path) if path else None


def _command_cluster(args: argparse.Namespace) -> int:
    address = _jobmanager_address(args)
    with ClusterClient(address) as cluster:
        overview = cluster.overview()
        taskmanagers = cluster.taskmanagers()
    print(f"JobManager {address} (Strom {overview.strom_version})")
    print(
        f"TaskManagers: {overview.taskmanagers}   slots: {overview.slots_available} free of "
        f"{overview.slots_total}   jobs running: {overview.jobs_running}"
    )
    if taskmanagers:
        print(f"{'ID':<40} {'ADDRESS':<22} {'SLOTS':>5} {'FREE':>5} {'CORES':>5} {'MEMORY':>9}")
        for tm in taskmanagers:
            memory = f"{tm.hardware.physical_memory / 2**30:.1f} GiB"
            print(
                f"{tm.id:<40} {tm.address:<22} {tm.slots_number:>5} {tm.free_slots:>5} "
                f"{tm.hardware.cpu_cores:>5} {memory:>9}"
            )
    return 0


def _command_certs(args: argparse.Namespace) -> int:
    import socket

    from client.certs import CLIENT, config_lines, make_cluster_certificates
    from client.jps import host_part, read_hosts_file, slaves_file
    from strom.configuration import default_conf_dir

    if args.host:  # named hosts: cluster members of either kind
        masters = slaves = args.host
    else:
        conf = default_conf_dir()
        masters = [host_part(entry) for entry in read_hosts_file(conf / "masters")]
        slaves = [host_part(entry) for entry in read_hosts_file(slaves_file(conf))]
    # This host too, as a client: it runs the scripts and bin/strom (and often a JobManager).
    folder = Path(args.folder)
    made = make_cluster_certificates(folder, masters, slaves, [socket.gethostname()])
    names = " ".join(node.name for node in made if node.name != CLIENT)
    print(f"CA {(folder / 'ca.pem').resolve()}; keep {(folder / 'ca.key').resolve()} secret.")
    print(f"Certificates for: {names}. Give each host ca.pem and its own .pem and .key.")
    print("\n# conf/strom-conf.yaml of every host ({host} is the host's name):")
    for line in config_lines(folder):
        print(line)
    client = next(node for node in made if node.name == CLIENT)
    print("\n# conf/strom-conf.yaml of a client elsewhere (bin/strom, env.execute()):")
    for line in config_lines(folder, client):
        print(line)
    return 0


_COMMANDS = {
    "run": _command_run,
    "info": _command_info,
    "list": _command_list,
    "cancel": _command_cancel,
    "cluster": _command_cluster,
    "savepoint": _command_savepoint,
    "stop": _command_stop,
    "certs": _command_certs,
}


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 1
    try:
        return _COMMANDS[args.command](args)
    except ClusterUnreachableError as error:
        print(f"strom {args.command}: {error}", file=sys.stderr)
        return 1
    except StromError as error:
        print(f"strom {args.command}: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
