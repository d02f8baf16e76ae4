from django.db import migrations, models

HELP = ("The product's widest silhouette over the orbit spans this share of the frame's side. "
        "Empty: an earlier job, framed to the product's box.")


class Migration(migrations.Migration):
    """Jobs before this one were framed to the product's box: they keep an empty fill (the
    field is added without a default), new jobs get 90 %."""

    dependencies = [
        ("pipeline", "0004_video"),
    ]

    operations = [
        migrations.AddField(
            model_name="job",
            name="frame_fill",
            field=models.PositiveSmallIntegerField(
                blank=True, null=True, help_text=HELP,
                verbose_name="product's share of the frame (%)"),
        ),
        migrations.AlterField(
            model_name="job",
            name="frame_fill",
            field=models.PositiveSmallIntegerField(
                blank=True, default=90, null=True, help_text=HELP,
                verbose_name="product's share of the frame (%)"),
        ),
    ]
