"""Jobs store their training steps (pipeline.services.JobOptions.resolved). An earlier job
that left them to the engine gets the steps its training reported (metrics.train.steps);
one that never trained keeps none, and the worker works them out if it is retried."""

from django.db import migrations


def fill_iterations(apps, schema_editor):
    Job = apps.get_model("pipeline", "Job")
    for job in Job.objects.filter(iterations__isnull=True).only("pk", "metrics").iterator():
        steps = ((job.metrics or {}).get("train") or {}).get("steps")
        if isinstance(steps, int) and steps > 0:
            Job.objects.filter(pk=job.pk).update(iterations=steps)


class Migration(migrations.Migration):

    dependencies = [
        ("pipeline", "0005_frame_fill"),
    ]

    operations = [
        migrations.RunPython(fill_iterations, migrations.RunPython.noop),
    ]
