"""A batch end to end with a real worker: the job creates the tasks, the worker runs them,
and housekeeping completes the batch without anyone looking at it."""

from llmadmin.extensions import db
from llmadmin.models import Batch, LLMModel
from llmadmin.models.batch import BatchStatus
from llmadmin.services import batches
from tests.integration.conftest import wait_until


def test_a_batch_is_created_run_and_completed_by_workers(app, simulator, workers, tmp_path):
    db.session.add(
        LLMModel(name="Simulated", base_url=simulator.url, model_name="sim", simulated=True)
    )
    db.session.commit()
    path = tmp_path / "in.csv"
    path.write_text(
        "prompt,model,custom_id\n" + "".join(f"p{i},Simulated,c{i}\n" for i in range(5))
    )
    batch = batches.create_batch_from_file(str(path), "csv", None, source_name="in.csv")
    assert batch.status == BatchStatus.VALIDATING
    batch_id = batch.id
    workers.start(1)

    def status():
        db.session.expire_all()
        row = db.session.get(Batch, batch_id)
        db.session.commit()
        return row.status == BatchStatus.COMPLETED and row

    row = wait_until(status, 60, message=f"batch completed\n{workers.logs()}")
    assert (row.total, row.lines) == (5, 5) and row.completed_at is not None
    assert batches.counts([batch_id])[batch_id].succeeded == 5
