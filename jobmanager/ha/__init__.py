"""High availability of the JobManager with ZooKeeper, as Flink's ``high-availability.type:
zookeeper``: leader election among the JobManagers of ``conf/masters``, the leader's address and
fencing token published for TaskManagers and clients, and the job graph and checkpoint-pointer
stores from which a new leader recovers the jobs (graphs in ``high-availability.storageDir``,
pointers in ZooKeeper under ``high-availability.cluster-id``).

``zookeeper_server`` runs a ZooKeeper peer for ``bin/start-zookeeper-quorum.sh`` and the tests.
"""
