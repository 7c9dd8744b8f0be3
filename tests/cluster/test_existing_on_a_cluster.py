"""Existing tests, run again against a 3-master Redis Cluster (see conftest.py): same code, same promises.

Each name below is the test of its own module, collected here a second time; the fixtures it
asks for (redis_server, worker, ledger) are the cluster's. Chosen to cover what the cluster
changes: the broker's operations, drain, priorities, delayed work, rate limits, the beat,
control, revoke, the FLUSHALL rebuild and the fault suite's Redis rows; and issue 21's caps,
keyed rate limits, debounced starts and unique enqueues.
"""

import pytest

from tests.calling.test_calling import (  # noqa: F401
    test_a_higher_priority_task_starts_before_a_lower_one_that_waits,
    test_a_task_for_a_queue_no_worker_consumes_waits_then_runs,
    test_eta_runs_at_its_time_once_however_many_workers,
)
from tests.calling.test_debounce import test_the_start_moves_in_redis_too  # noqa: F401
from tests.calling.test_retries import test_the_state_is_retry_while_the_task_waits  # noqa: F401
from tests.calling.test_revoke import (  # noqa: F401
    test_a_task_revoked_while_no_worker_is_online_never_runs,
    test_terminate_kills_the_running_task_and_the_worker_carries_on,
)
from tests.calling.test_unique import test_20_threads_in_3_processes_enqueue_the_same_unique_key_into_one_row  # noqa: F401
from tests.faults.test_faults import (  # noqa: F401
    test_flushall_with_work_queued_delayed_and_running,
    test_one_message_delivered_three_times,
    test_redis_down_for_30_seconds_during_enqueues_and_work,
    test_redis_frozen_with_sigstop,
    test_sigkill_of_the_whole_worker_mid_task,
)
from tests.ops.test_control import (  # noqa: F401
    test_add_and_cancel_consumer_change_the_queues_a_worker_reads,
    test_inspect_active_reserved_scheduled_registered_stats_and_queues,
    test_ping_and_status_reach_every_live_worker,
    test_rate_limit_changes_the_rate_every_worker_applies,
    test_shutdown_stops_only_the_destination_worker_warmly,
)
from tests.periodic.test_beat_workers import test_two_workers_fire_each_run_of_a_one_second_schedule_once  # noqa: F401
from tests.transport.test_broker import (  # noqa: F401
    test_a_batch_claim_over_two_queues_is_one_round_trip_and_takes_the_first_queue_first,
    test_a_claim_is_owned_until_acked_and_only_the_owner_can_ack,
    test_a_copy_of_a_reserved_id_is_dropped_not_run_twice,
    test_a_deep_queue_is_claimed_in_batches_and_a_shallow_one_one_at_a_time,
    test_a_lock_left_without_an_expiry_lapses_instead_of_stopping_its_duty_forever,
    test_a_queue_whose_keys_were_lost_alone_is_noticed_by_its_epoch_marker,
    test_an_expired_lease_is_reaped_back_to_the_queue,
    test_delayed_messages_wait_until_due,
    test_extend_keeps_a_lease_alive_and_reports_lost_ones,
    test_higher_priority_is_claimed_first_then_arrival_order,
    test_publishing_twice_is_a_no_op,
    test_queues_are_consumed_in_the_order_given,
    test_release_returns_a_claim_and_can_forgive_the_delivery,
    test_the_oldest_waiting_id_is_found_across_priority_bands,
    test_wait_for_work_wakes_on_publish,
)
from tests.transport.test_keys import (
    sent,  # noqa: F401  (its fixture)
    test_every_script_call_touches_one_hash_slot,  # noqa: F401
)
from tests.transport.test_legacy import test_the_old_layout_is_taken_in_with_its_order_due_times_and_delivery_counts  # noqa: F401
from tests.worker.test_caps import (  # noqa: F401
    test_a_keyed_cap_serialises_each_key_and_lets_keys_run_side_by_side,
    test_a_slot_held_by_a_killed_worker_comes_back_within_lease_and_reap,
    test_concurrency_1_never_overlaps_across_workers_and_waiters_are_woken,
    test_two_keys_at_2_per_second_interleave_at_their_own_pace_across_2_workers,
)
from tests.worker.test_ratelimit import test_the_limit_holds_across_workers_and_others_are_not_blocked  # noqa: F401
from tests.worker.test_worker import (  # noqa: F401
    test_a_view_enqueues_in_its_transaction_and_the_worker_runs_it,
    test_an_idle_worker_starts_a_new_task_promptly,
)

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("redis_server")]
