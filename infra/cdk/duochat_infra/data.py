"""The data tier: RDS MySQL 8 and ElastiCache Redis, in isolated subnets, reachable only
from the security groups that ``allow_from`` names (the backend tasks).

MySQL requires TLS (``require_secure_transport``), logs statements slower than
``long_query_time`` to the exported slow query log, and caps ``max_connections`` at the figure
the pools are sized against. Each service logs in as its own user (``service_secret``), which
``ServiceUsers`` (db_users.py) creates with the master secret at deploy time.
"""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_elasticache as elasticache
from aws_cdk import aws_logs as logs
from aws_cdk import aws_rds as rds
from aws_cdk import aws_secretsmanager as secretsmanager
from cdk_nag import NagPackSuppression, NagSuppressions
from constructs import Construct

MYSQL_PORT = 3306
REDIS_PORT = 6379
# Characters that would need escaping in a URL or a shell; the entrypoint quotes the
# password anyway, this keeps it readable in a debugging session.
_EXCLUDED_PASSWORD_CHARS = " %+~`#$&*()|[]{}:;<>?!'/@\"\\,=^"  # noqa: S105


class Database(Construct):
    """One MySQL 8 instance; each service gets its own database on it (created at start)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        vpc: ec2.IVpc,
        subnets: ec2.SubnetSelection,
        instance_type: str,
        multi_az: bool,
        allocated_storage_gib: int,
        backup_retention: Duration,
        log_retention: logs.RetentionDays,
        retain: bool,
        max_connections: int,
        long_query_time_s: float,
    ) -> None:
        super().__init__(scope, construct_id)
        self._retain = retain
        self.security_group = ec2.SecurityGroup(
            self, "SecurityGroup", vpc=vpc, description="duochat MySQL", allow_all_outbound=False
        )
        engine = rds.DatabaseInstanceEngine.mysql(version=rds.MysqlEngineVersion.VER_8_4_7)
        self.parameter_group = rds.ParameterGroup(
            self,
            "Parameters",
            engine=engine,
            description="duochat MySQL: TLS only, slow query log, sized max_connections",
            parameters={
                "require_secure_transport": "1",
                # The export ships the log file; with log_output=TABLE nothing would arrive.
                "slow_query_log": "1",
                "log_output": "FILE",
                "long_query_time": str(long_query_time_s),
                "max_connections": str(max_connections),
            },
        )
        self.instance = rds.DatabaseInstance(
            self,
            "Instance",
            engine=engine,
            parameter_group=self.parameter_group,
            instance_type=ec2.InstanceType(instance_type),
            vpc=vpc,
            vpc_subnets=subnets,
            security_groups=[self.security_group],
            credentials=rds.Credentials.from_generated_secret(
                "duochat", exclude_characters=_EXCLUDED_PASSWORD_CHARS
            ),
            multi_az=multi_az,
            allocated_storage=allocated_storage_gib,
            max_allocated_storage=allocated_storage_gib * 5,
            storage_type=rds.StorageType.GP3,
            storage_encrypted=True,
            backup_retention=backup_retention,
            delete_automated_backups=not retain,
            deletion_protection=retain,
            removal_policy=RemovalPolicy.RETAIN if retain else RemovalPolicy.SNAPSHOT,
            cloudwatch_logs_exports=["error", "slowquery"],
            cloudwatch_logs_retention=log_retention,
            auto_minor_version_upgrade=True,
            port=MYSQL_PORT,
        )
        # The attached secret: JSON with username, password, host, port.
        secret = self.instance.secret
        assert secret is not None  # from_generated_secret always makes one
        # The master secret: only ServiceUsers reads it, never a service task.
        self.secret: secretsmanager.ISecret = secret
        self.service_secrets: dict[str, secretsmanager.Secret] = {}

        suppressions = [
            NagPackSuppression(
                id="AwsSolutions-SMG4",
                reason="Tasks read the password once at start; rotating it would need a "
                "coordinated task restart, which is not built yet.",
            ),
            NagPackSuppression(
                id="AwsSolutions-RDS6",
                reason="Services authenticate with the Secrets Manager credentials; IAM "
                "database auth would need short-lived tokens in every connection pool.",
            ),
            NagPackSuppression(
                id="AwsSolutions-RDS11",
                reason="The default port is fine: only the task security groups may connect.",
            ),
        ]
        if not multi_az:
            suppressions.append(
                NagPackSuppression(
                    id="AwsSolutions-RDS3",
                    reason="Single-AZ only in dev, to halve its cost; prod is Multi-AZ.",
                )
            )
        if not retain:
            suppressions.append(
                NagPackSuppression(
                    id="AwsSolutions-RDS10",
                    reason="dev is torn down freely (a final snapshot is kept); prod has "
                    "deletion protection.",
                )
            )
        NagSuppressions.add_resource_suppressions(self, suppressions, apply_to_children=True)

    def allow_from(self, peer: ec2.ISecurityGroup) -> None:
        self.security_group.add_ingress_rule(
            peer, ec2.Port.tcp(MYSQL_PORT), "MySQL from a duochat service"
        )

    def service_secret(self, service: str) -> secretsmanager.Secret:
        """The credentials of ``service``'s own user (JSON: username, password, host, port),
        whose rights are on database ``service`` only."""
        stack = Stack.of(self)
        secret = secretsmanager.Secret(
            self,
            f"{service.capitalize()}User",
            description=f"duochat MySQL user of the {service} service",
            generate_secret_string=secretsmanager.SecretStringGenerator(
                secret_string_template=stack.to_json_string(
                    {
                        "username": service,
                        "host": self.instance.db_instance_endpoint_address,
                        "port": self.instance.db_instance_endpoint_port,
                        "dbname": service,
                    }
                ),
                generate_string_key="password",
                exclude_characters=_EXCLUDED_PASSWORD_CHARS,
                password_length=32,
            ),
            removal_policy=RemovalPolicy.RETAIN if self._retain else RemovalPolicy.DESTROY,
        )
        NagSuppressions.add_resource_suppressions(
            secret,
            [
                NagPackSuppression(
                    id="AwsSolutions-SMG4",
                    reason="A service reads its password once at start; rotation needs the "
                    "user provisioning to follow it and a task restart, not built yet.",
                )
            ],
        )
        self.service_secrets[service] = secret
        return secret


class Cache(Construct):
    """A Redis replication group: primary and replica in two AZs, TLS and AUTH token."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        vpc: ec2.IVpc,
        subnets: ec2.SubnetSelection,
        node_type: str,
        shards: int,
        snapshot_retention_days: int,
        log_retention: logs.RetentionDays,
        retain: bool,
    ) -> None:
        super().__init__(scope, construct_id)
        removal = RemovalPolicy.RETAIN if retain else RemovalPolicy.DESTROY
        self.security_group = ec2.SecurityGroup(
            self, "SecurityGroup", vpc=vpc, description="duochat Redis", allow_all_outbound=False
        )
        self.auth_token = secretsmanager.Secret(
            self,
            "AuthToken",
            description="duochat Redis AUTH token",
            generate_secret_string=secretsmanager.SecretStringGenerator(
                exclude_punctuation=True, password_length=64
            ),
            removal_policy=removal,
        )
        subnet_group = elasticache.CfnSubnetGroup(
            self,
            "Subnets",
            description="duochat Redis (isolated subnets)",
            subnet_ids=vpc.select_subnets(subnet_type=subnets.subnet_type).subnet_ids,
        )
        slow_log = logs.LogGroup(self, "SlowLog", retention=log_retention, removal_policy=removal)
        self.replication_group = elasticache.CfnReplicationGroup(
            self,
            "ReplicationGroup",
            replication_group_description="duochat Redis (streams, presence, fan-out)",
            engine="redis",
            engine_version="7.1",
            cache_node_type=node_type,
            # Cluster mode on: ``shards`` primaries, each with a replica in another zone.
            cache_parameter_group_name="default.redis7.cluster.on",
            num_node_groups=shards,
            replicas_per_node_group=1,
            automatic_failover_enabled=True,
            multi_az_enabled=True,
            at_rest_encryption_enabled=True,
            transit_encryption_enabled=True,
            auth_token=self.auth_token.secret_value.unsafe_unwrap(),
            cache_subnet_group_name=subnet_group.ref,
            security_group_ids=[self.security_group.security_group_id],
            port=REDIS_PORT,
            snapshot_retention_limit=snapshot_retention_days,
            auto_minor_version_upgrade=True,
            log_delivery_configurations=[
                elasticache.CfnReplicationGroup.LogDeliveryConfigurationRequestProperty(
                    destination_type="cloudwatch-logs",
                    log_format="json",
                    log_type="slow-log",
                    destination_details=elasticache.CfnReplicationGroup.DestinationDetailsProperty(
                        cloud_watch_logs_details=elasticache.CfnReplicationGroup.CloudWatchLogsDestinationDetailsProperty(
                            log_group=slow_log.log_group_name
                        )
                    ),
                )
            ],
        )
        self.replication_group.apply_removal_policy(removal)
        NagSuppressions.add_resource_suppressions(
            self,
            [
                NagPackSuppression(
                    id="AwsSolutions-AEC5",
                    reason="The default port is fine: only the task security groups may "
                    "connect, over TLS with an AUTH token.",
                ),
                NagPackSuppression(
                    id="AwsSolutions-SMG4",
                    reason="Rotating the Redis AUTH token needs ElastiCache's two-token "
                    "rotation and a task restart, which is not built yet.",
                ),
            ],
            apply_to_children=True,
        )

    @property
    def host(self) -> str:
        """The configuration endpoint: a cluster client learns every shard from it."""
        return self.replication_group.attr_configuration_end_point_address

    @property
    def port(self) -> str:
        return self.replication_group.attr_configuration_end_point_port

    def allow_from(self, peer: ec2.ISecurityGroup) -> None:
        self.security_group.add_ingress_rule(
            peer, ec2.Port.tcp(REDIS_PORT), "Redis from a duochat service"
        )
