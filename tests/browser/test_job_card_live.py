"""The job page's progress card updates its values in place: focus and the live region
survive each refresh (real page, real polling; the job's progress is moved in the database
as the worker would move it)."""

from __future__ import annotations

import pytest

from pipeline.models import Job
from products.models import Product
from tests.browser.conftest import sign_in
from tests.site.display.test_job_page import running_job

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]

PASSWORD = "pw-card-123"


def test_progress_card_keeps_focus_and_its_live_region(page, django_user_model):
    owner = django_user_model.objects.create_user("card", password=PASSWORD)
    job = running_job(Product.objects.create(owner=owner, name="Lamp", sku="LAMP-1"))
    sign_in(page, "card", PASSWORD)
    page.goto(f"/jobs/{job.pk}/")

    # Keep hold of the nodes a replacement would swap out, and put the keyboard on
    # "Cancel job".
    page.evaluate("""() => {
        window.card = document.getElementById('job-progress');
        window.live = document.querySelector('[data-job-stage]');
    }""")
    cancel = page.get_by_role("button", name="Cancel job")
    cancel.focus()
    assert page.locator("[data-job-stage]").inner_text().startswith("41%")

    Job.objects.filter(pk=job.pk).update(progress=0.73, stage_progress=0.9,
                                         message="step 90/100, loss 0.0100")
    page.wait_for_function(
        "() => document.querySelector('[data-job-stage]').innerText.startsWith('73%')")
    assert page.evaluate("() => document.getElementById('job-progress') === window.card")
    assert page.evaluate("() => document.querySelector('[data-job-stage]') === window.live")
    assert page.locator("[data-job-progress]").evaluate("p => p.value") == 73
    assert page.evaluate("() => document.activeElement.textContent.trim()") == "Cancel job"
    assert "step 90/100" in page.locator("[data-job-messages]").inner_text()
