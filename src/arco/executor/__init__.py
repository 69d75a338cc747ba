"""The executor: the code that runs user assets for dispatched task attempts.

Transport-neutral at its seam (an envelope in, a task result out): the Temporal-native transport serves it as
the ``arco.execute_task`` activity (:func:`arco.worker.executor.build_executor_worker`); other transports (an
HTTP worker) reuse the same code.
"""
