"""Self-tests for ec2_check.

Run them with: /var/lib/stratus-dev/venv/bin/python -m unittest test_ec2_check -v

The valid fixtures follow real EC2 responses. Every element name in them
comes from botocore's EC2 model (botocore/data/ec2/2016-11-15/service-2.json),
not from memory. They are checked with enums=True, so each enum value in them
is also a value the model knows.

Each broken variant changes one thing in a valid fixture. That way a test
fails only because of the fault it is meant to show.
"""

import base64
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

# Make ``import ec2_check`` work from any working directory (e.g. when run
# with ``python -m unittest discover -s api/tests`` from the repo root).
sys.path.insert(0, str(Path(__file__).resolve().parent))

import ec2_check  # noqa: E402
from ec2_check import check  # noqa: E402

NS = 'xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"'
RID = "<requestId>59dbff89-35bd-4eac-99ed-be587EXAMPLE</requestId>"

INSTANCE_ITEM = """
<item>
  <instanceId>i-1234567890abcdef0</instanceId>
  <imageId>ami-0abcdef1234567890</imageId>
  <instanceState><code>16</code><name>running</name></instanceState>
  <privateDnsName>ip-10-0-0-3.ec2.internal</privateDnsName>
  <dnsName/>
  <reason/>
  <keyName>mykey</keyName>
  <amiLaunchIndex>0</amiLaunchIndex>
  <productCodes/>
  <instanceType>m1.small</instanceType>
  <launchTime>2024-05-01T12:00:00.000Z</launchTime>
  <placement>
    <availabilityZone>nova</availabilityZone>
    <groupName/>
    <tenancy>default</tenancy>
  </placement>
  <monitoring><state>disabled</state></monitoring>
  <privateIpAddress>10.0.0.3</privateIpAddress>
  <ipAddress>203.0.113.10</ipAddress>
  <groupSet>
    <item><groupId>sg-0123456789abcdef0</groupId><groupName>default</groupName></item>
  </groupSet>
  <architecture>x86_64</architecture>
  <rootDeviceType>ebs</rootDeviceType>
  <rootDeviceName>/dev/vda</rootDeviceName>
  <blockDeviceMapping>
    <item>
      <deviceName>/dev/vda</deviceName>
      <ebs>
        <volumeId>vol-0123456789abcdef0</volumeId>
        <status>attached</status>
        <attachTime>2024-05-01T12:00:05.000Z</attachTime>
        <deleteOnTermination>true</deleteOnTermination>
      </ebs>
    </item>
  </blockDeviceMapping>
  <virtualizationType>hvm</virtualizationType>
  <hypervisor>xen</hypervisor>
  <tagSet>
    <item><key>Name</key><value>web-1</value></item>
  </tagSet>
  <sourceDestCheck>true</sourceDestCheck>
  <ebsOptimized>false</ebsOptimized>
</item>
"""

DESCRIBE_INSTANCES = f"""<?xml version="1.0" encoding="UTF-8"?>
<DescribeInstancesResponse {NS}>
  {RID}
  <reservationSet>
    <item>
      <reservationId>r-1234567890abcdef0</reservationId>
      <ownerId>123456789012</ownerId>
      <groupSet/>
      <instancesSet>{INSTANCE_ITEM}</instancesSet>
    </item>
  </reservationSet>
</DescribeInstancesResponse>
"""

RUN_INSTANCES = f"""<RunInstancesResponse {NS}>
  {RID}
  <reservationId>r-1234567890abcdef0</reservationId>
  <ownerId>123456789012</ownerId>
  <groupSet/>
  <instancesSet>
    <item>
      <instanceId>i-1234567890abcdef0</instanceId>
      <imageId>ami-0abcdef1234567890</imageId>
      <instanceState><code>0</code><name>pending</name></instanceState>
      <privateDnsName/>
      <dnsName/>
      <reason/>
      <keyName>mykey</keyName>
      <amiLaunchIndex>0</amiLaunchIndex>
      <instanceType>m1.small</instanceType>
      <launchTime>2024-05-01T12:00:00Z</launchTime>
      <placement><availabilityZone>nova</availabilityZone><tenancy>default</tenancy></placement>
      <monitoring><state>disabled</state></monitoring>
      <groupSet><item><groupId>sg-0123456789abcdef0</groupId><groupName>default</groupName></item></groupSet>
      <tagSet/>
    </item>
  </instancesSet>
</RunInstancesResponse>
"""

CREATE_KEY_PAIR = f"""<CreateKeyPairResponse {NS}>
  {RID}
  <keyName>mykey</keyName>
  <keyFingerprint>1f:51:ae:28:bf:89:e9:d8:1f:25:5d:37:2d:7d:b8:ca:9f:f5:f1:6f</keyFingerprint>
  <keyMaterial>-----BEGIN RSA PRIVATE KEY-----
MIIEowIBAAKCAQEAexample
-----END RSA PRIVATE KEY-----</keyMaterial>
  <keyPairId>key-0123456789abcdef0</keyPairId>
</CreateKeyPairResponse>
"""

DESCRIBE_SECURITY_GROUPS = f"""<DescribeSecurityGroupsResponse {NS}>
  {RID}
  <securityGroupInfo>
    <item>
      <ownerId>123456789012</ownerId>
      <groupId>sg-0123456789abcdef0</groupId>
      <groupName>web</groupName>
      <groupDescription>web servers</groupDescription>
      <ipPermissions>
        <item>
          <ipProtocol>tcp</ipProtocol>
          <fromPort>22</fromPort>
          <toPort>22</toPort>
          <groups/>
          <ipRanges><item><cidrIp>0.0.0.0/0</cidrIp></item></ipRanges>
          <ipv6Ranges/>
          <prefixListIds/>
        </item>
        <item>
          <ipProtocol>-1</ipProtocol>
          <groups>
            <item>
              <userId>123456789012</userId>
              <groupId>sg-0123456789abcdef0</groupId>
              <groupName>web</groupName>
            </item>
          </groups>
          <ipRanges/>
        </item>
      </ipPermissions>
      <ipPermissionsEgress>
        <item>
          <ipProtocol>-1</ipProtocol>
          <groups/>
          <ipRanges><item><cidrIp>0.0.0.0/0</cidrIp><description>all</description></item></ipRanges>
        </item>
      </ipPermissionsEgress>
      <tagSet/>
    </item>
  </securityGroupInfo>
</DescribeSecurityGroupsResponse>
"""

DESCRIBE_IMAGES = f"""<DescribeImagesResponse {NS}>
  {RID}
  <imagesSet>
    <item>
      <imageId>ami-0abcdef1234567890</imageId>
      <imageLocation>stratus/cirros-0.6.2</imageLocation>
      <imageState>available</imageState>
      <imageOwnerId>123456789012</imageOwnerId>
      <creationDate>2024-04-30T08:00:00.000Z</creationDate>
      <isPublic>true</isPublic>
      <architecture>x86_64</architecture>
      <imageType>machine</imageType>
      <name>cirros-0.6.2</name>
      <description>CirrOS test image</description>
      <rootDeviceType>ebs</rootDeviceType>
      <rootDeviceName>/dev/vda</rootDeviceName>
      <blockDeviceMapping>
        <item>
          <deviceName>/dev/vda</deviceName>
          <ebs>
            <snapshotId>snap-0123456789abcdef0</snapshotId>
            <volumeSize>1</volumeSize>
            <deleteOnTermination>true</deleteOnTermination>
            <volumeType>standard</volumeType>
            <encrypted>false</encrypted>
          </ebs>
        </item>
      </blockDeviceMapping>
      <virtualizationType>hvm</virtualizationType>
      <hypervisor>xen</hypervisor>
      <tagSet/>
    </item>
  </imagesSet>
</DescribeImagesResponse>
"""

DESCRIBE_AVAILABILITY_ZONES = f"""<DescribeAvailabilityZonesResponse {NS}>
  {RID}
  <availabilityZoneInfo>
    <item>
      <zoneName>nova</zoneName>
      <zoneState>available</zoneState>
      <regionName>stratus-1</regionName>
      <zoneId>strat1-az1</zoneId>
      <zoneType>availability-zone</zoneType>
      <optInStatus>opt-in-not-required</optInStatus>
      <groupName>stratus-1</groupName>
      <networkBorderGroup>stratus-1</networkBorderGroup>
      <messageSet/>
    </item>
  </availabilityZoneInfo>
</DescribeAvailabilityZonesResponse>
"""

DESCRIBE_INSTANCE_TYPES = f"""<DescribeInstanceTypesResponse {NS}>
  {RID}
  <instanceTypeSet>
    <item>
      <instanceType>m1.small</instanceType>
      <currentGeneration>false</currentGeneration>
      <freeTierEligible>false</freeTierEligible>
      <supportedUsageClasses><item>on-demand</item></supportedUsageClasses>
      <supportedRootDeviceTypes><item>ebs</item></supportedRootDeviceTypes>
      <supportedVirtualizationTypes><item>hvm</item></supportedVirtualizationTypes>
      <bareMetal>false</bareMetal>
      <hypervisor>xen</hypervisor>
      <processorInfo>
        <supportedArchitectures><item>x86_64</item></supportedArchitectures>
        <sustainedClockSpeedInGhz>2.5</sustainedClockSpeedInGhz>
      </processorInfo>
      <vCpuInfo>
        <defaultVCpus>1</defaultVCpus>
        <defaultCores>1</defaultCores>
        <defaultThreadsPerCore>1</defaultThreadsPerCore>
        <validCores><item>1</item></validCores>
        <validThreadsPerCore><item>1</item></validThreadsPerCore>
      </vCpuInfo>
      <memoryInfo><sizeInMiB>2048</sizeInMiB></memoryInfo>
      <instanceStorageSupported>false</instanceStorageSupported>
      <ebsInfo>
        <ebsOptimizedSupport>unsupported</ebsOptimizedSupport>
        <encryptionSupport>unsupported</encryptionSupport>
        <nvmeSupport>unsupported</nvmeSupport>
      </ebsInfo>
      <networkInfo>
        <networkPerformance>Low</networkPerformance>
        <maximumNetworkInterfaces>1</maximumNetworkInterfaces>
        <maximumNetworkCards>1</maximumNetworkCards>
        <defaultNetworkCardIndex>0</defaultNetworkCardIndex>
        <ipv4AddressesPerInterface>1</ipv4AddressesPerInterface>
        <ipv6AddressesPerInterface>0</ipv6AddressesPerInterface>
        <ipv6Supported>false</ipv6Supported>
        <enaSupport>unsupported</enaSupport>
        <efaSupported>false</efaSupported>
      </networkInfo>
      <placementGroupInfo><supportedStrategies><item>spread</item></supportedStrategies></placementGroupInfo>
      <hibernationSupported>false</hibernationSupported>
      <burstablePerformanceSupported>false</burstablePerformanceSupported>
      <dedicatedHostsSupported>false</dedicatedHostsSupported>
      <autoRecoverySupported>false</autoRecoverySupported>
      <supportedBootModes><item>legacy-bios</item><item>uefi</item></supportedBootModes>
    </item>
  </instanceTypeSet>
  <nextToken/>
</DescribeInstanceTypesResponse>
"""

CONSOLE_TEXT = "[    0.000000] Linux version 6.1.0\nlogin: "
GET_CONSOLE_OUTPUT = f"""<GetConsoleOutputResponse {NS}>
  {RID}
  <instanceId>i-1234567890abcdef0</instanceId>
  <timestamp>2024-05-01T12:05:00.000Z</timestamp>
  <output>{base64.b64encode(CONSOLE_TEXT.encode()).decode()}</output>
</GetConsoleOutputResponse>
"""

DESCRIBE_TAGS = f"""<DescribeTagsResponse {NS}>
  {RID}
  <tagSet>
    <item>
      <resourceId>i-1234567890abcdef0</resourceId>
      <resourceType>instance</resourceType>
      <key>Name</key>
      <value>web-1</value>
    </item>
    <item>
      <resourceId>ami-0abcdef1234567890</resourceId>
      <resourceType>image</resourceType>
      <key>os</key>
      <value/>
    </item>
  </tagSet>
</DescribeTagsResponse>
"""

TERMINATE_INSTANCES = f"""<TerminateInstancesResponse {NS}>
  {RID}
  <instancesSet>
    <item>
      <instanceId>i-1234567890abcdef0</instanceId>
      <currentState><code>32</code><name>shutting-down</name></currentState>
      <previousState><code>16</code><name>running</name></previousState>
    </item>
  </instancesSet>
</TerminateInstancesResponse>
"""

ERROR_400 = """<?xml version="1.0" encoding="UTF-8"?>
<Response><Errors><Error><Code>InvalidInstanceID.NotFound</Code><Message>The instance ID 'i-1' does not exist</Message></Error></Errors><RequestID>ea966190-f9aa-478e-9ede-example</RequestID></Response>
"""

VALID = {
    "DescribeInstances": DESCRIBE_INSTANCES,
    "RunInstances": RUN_INSTANCES,
    "CreateKeyPair": CREATE_KEY_PAIR,
    "DescribeSecurityGroups": DESCRIBE_SECURITY_GROUPS,
    "DescribeImages": DESCRIBE_IMAGES,
    "DescribeAvailabilityZones": DESCRIBE_AVAILABILITY_ZONES,
    "DescribeInstanceTypes": DESCRIBE_INSTANCE_TYPES,
    "GetConsoleOutput": GET_CONSOLE_OUTPUT,
    "DescribeTags": DESCRIBE_TAGS,
    "TerminateInstances": TERMINATE_INSTANCES,
}


def replaced(text, old, new):
    """Return ``text`` with exactly one ``old`` replaced by ``new``.

    Fails if ``old`` does not occur exactly once, so a broken variant cannot
    quietly end up the same as the valid fixture.
    """
    assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times"
    return text.replace(old, new)


class ValidResponses(unittest.TestCase):
    def test_each_valid_fixture_passes(self):
        for op, xml in VALID.items():
            with self.subTest(op=op):
                self.assertEqual(check(op, 200, xml.encode(), enums=True), [])

    def test_error_response_passes(self):
        self.assertEqual(check("DescribeInstances", 400, ERROR_400.encode()), [])
        self.assertEqual(check("RunInstances", 503, ERROR_400.encode()), [])

    def test_fixtures_really_parse_as_expected(self):
        """Make sure the fixtures mean what we think, via botocore/boto3 itself."""
        from botocore.parsers import create_parser
        model = ec2_check._service_model()
        parsed = create_parser("ec2").parse(
            {"status_code": 200, "headers": {}, "body": DESCRIBE_INSTANCES.encode()},
            model.operation_model("DescribeInstances").output_shape,
        )
        inst = parsed["Reservations"][0]["Instances"][0]
        self.assertEqual(inst["State"], {"Code": 16, "Name": "running"})
        self.assertEqual(inst["Tags"], [{"Key": "Name", "Value": "web-1"}])
        self.assertEqual(inst["Placement"]["AvailabilityZone"], "nova")
        self.assertEqual(inst["LaunchTime"].isoformat(), "2024-05-01T12:00:00+00:00")
        self.assertEqual(parsed["ResponseMetadata"]["RequestId"],
                         "59dbff89-35bd-4eac-99ed-be587EXAMPLE")

    def test_no_output_operation_allows_return(self):
        body = f"<DeleteTagsResponse {NS}>{RID}<return>true</return></DeleteTagsResponse>"
        self.assertEqual(check("DeleteTags", 200, body.encode()), [])

    def test_member_without_locationName_keeps_its_case(self):
        """EbsBlockDevice.VolumeInitializationRate has no locationName, so botocore
        reads <VolumeInitializationRate> exactly, and the lower-cased form is dropped."""
        ok = replaced(DESCRIBE_IMAGES, "<encrypted>false</encrypted>",
                      "<VolumeInitializationRate>100</VolumeInitializationRate>")
        self.assertEqual(check("DescribeImages", 200, ok.encode()), [])
        bad = replaced(DESCRIBE_IMAGES, "<encrypted>false</encrypted>",
                       "<volumeInitializationRate>100</volumeInitializationRate>")
        probs = check("DescribeImages", 200, bad.encode())
        self.assertTrue(any("volumeInitializationRate" in p and "wrong case" in p for p in probs), probs)


class BrokenResponses(unittest.TestCase):
    def assertProblem(self, problems, *needles):
        """Assert that one problem line contains all of ``needles``."""
        self.assertTrue(
            any(all(n in p for n in needles) for p in problems),
            f"no problem containing {needles}; got:\n  " + "\n  ".join(problems),
        )

    def bad(self, op, old, new, status=200):
        return check(op, status, replaced(VALID[op], old, new).encode())

    def test_misspelled_element(self):
        probs = self.bad("DescribeInstances", "<instanceState><code>16</code><name>running</name></instanceState>",
                         "<instanceStat><code>16</code><name>running</name></instanceStat>")
        self.assertProblem(probs, "instancesSet/item[0]/instanceStat", "unknown element", "<instanceState>")

    def test_wrong_case(self):
        probs = self.bad("DescribeInstances", "<launchTime>2024-05-01T12:00:00.000Z</launchTime>",
                         "<LaunchTime>2024-05-01T12:00:00.000Z</LaunchTime>")
        self.assertProblem(probs, "/LaunchTime", "wrong case, expected <launchTime>")

    def test_member_name_instead_of_locationName(self):
        # The State member is serialized as <instanceState>, not <state>.
        probs = self.bad("DescribeInstances", "<instanceState><code>16</code><name>running</name></instanceState>",
                         "<state><code>16</code><name>running</name></state>")
        self.assertProblem(probs, "/state", "unknown element")

    def test_wrong_nesting(self):
        # <tenancy> belongs inside <placement>, not directly in the instance.
        probs = self.bad("DescribeInstances", "<groupName/>\n    <tenancy>default</tenancy>\n  </placement>",
                         "<groupName/>\n  </placement>\n  <tenancy>default</tenancy>")
        self.assertProblem(probs, "instancesSet/item[0]/tenancy", "unknown element")

    def test_list_without_item_wrappers(self):
        probs = self.bad("DescribeInstances", "<item><key>Name</key><value>web-1</value></item>",
                         "<key>Name</key><value>web-1</value>")
        self.assertProblem(probs, "tagSet/key", "must be wrapped in <item>")

    def test_list_repeated_instead_of_wrapped(self):
        probs = self.bad("DescribeTags", "</tagSet>", "</tagSet><tagSet><item><key>k</key></item></tagSet>")
        self.assertProblem(probs, "/tagSet", "repeated 2 times")

    def test_scalar_list_without_item_wrappers(self):
        probs = self.bad("DescribeInstanceTypes", "<supportedBootModes><item>legacy-bios</item><item>uefi</item></supportedBootModes>",
                         "<supportedBootModes>legacy-bios uefi</supportedBootModes>")
        self.assertProblem(probs, "supportedBootModes", "text")

    def test_bad_timestamps(self):
        for value in ("Tuesday", "not-a-date", "2024-05-01 12:00:00", "2024-05-01T12:00:00", "1714564800"):
            with self.subTest(value=value):
                probs = self.bad("DescribeInstances", "<launchTime>2024-05-01T12:00:00.000Z</launchTime>",
                                 f"<launchTime>{value}</launchTime>")
                self.assertProblem(probs, "launchTime", repr(value))

    def test_bad_timestamp_in_get_console_output(self):
        probs = self.bad("GetConsoleOutput", "2024-05-01T12:05:00.000Z", "yesterday-ish")
        self.assertProblem(probs, "/timestamp")

    def test_bad_integer_and_boolean(self):
        probs = self.bad("DescribeInstances", "<code>16</code>", "<code>sixteen</code>")
        self.assertProblem(probs, "instanceState/code", "not a valid integer")
        self.assertProblem(probs, "botocore parser raised")
        probs = self.bad("DescribeInstances", "<amiLaunchIndex>0</amiLaunchIndex>", "<amiLaunchIndex>1_0</amiLaunchIndex>")
        self.assertProblem(probs, "amiLaunchIndex", "not a valid integer")
        probs = self.bad("DescribeInstances", "<ebsOptimized>false</ebsOptimized>", "<ebsOptimized>False</ebsOptimized>")
        self.assertProblem(probs, "ebsOptimized", "silently reads it as False")
        probs = self.bad("DescribeInstanceTypes", "<sizeInMiB>2048</sizeInMiB>", "<sizeInMiB>2 GiB</sizeInMiB>")
        self.assertProblem(probs, "sizeInMiB", "not a valid long")

    def test_text_in_structure(self):
        probs = self.bad("DescribeInstances", "<instanceState><code>16</code><name>running</name></instanceState>",
                         "<instanceState>running</instanceState>")
        self.assertProblem(probs, "instanceState", "inside structure InstanceState")

    def test_repeated_scalar_becomes_list_in_botocore(self):
        probs = self.bad("CreateKeyPair", "<keyName>mykey</keyName>", "<keyName>a</keyName><keyName>b</keyName>")
        self.assertProblem(probs, "/keyName", "repeated 2 times")
        self.assertProblem(probs, "[parsed] KeyPair.KeyName", "produced list")

    def test_missing_request_id(self):
        probs = self.bad("TerminateInstances", RID, "")
        self.assertProblem(probs, "requestId: missing")

    def test_request_id_wrong_case(self):
        probs = self.bad("TerminateInstances", RID, "<requestID>x</requestID>")
        self.assertProblem(probs, "requestId: missing")
        self.assertProblem(probs, "/requestID", "unknown element")

    def test_request_id_nested_not_at_top(self):
        probs = self.bad("DescribeTags", RID, "")
        probs += self.bad("DescribeTags", "<value/>", "<value/>" + RID)
        self.assertProblem(probs, "requestId: missing")
        self.assertProblem(probs, "tagSet/item[1]/requestId", "unknown element")

    def test_wrong_root_element(self):
        # Rename both tags so the XML stays well-formed.
        probs = check("DescribeTags", 200, VALID["DescribeTags"].replace(
            "DescribeTagsResponse", "DescribeTagsResult").encode())
        self.assertProblem(probs, "root element should be <DescribeTagsResponse>")

    def test_console_output_not_base64(self):
        b64 = base64.b64encode(CONSOLE_TEXT.encode()).decode()
        probs = self.bad("GetConsoleOutput", b64, "plain text console output!")
        self.assertProblem(probs, "output", "base64")

    def test_key_material_misnamed(self):
        body = VALID["CreateKeyPair"].replace("keyFingerprint", "fingerprint")
        self.assertProblem(check("CreateKeyPair", 200, body.encode()),
                           "/CreateKeyPairResponse/fingerprint: unknown element, not a member of KeyPair",
                           "did you mean <keyFingerprint>?")
        body = VALID["CreateKeyPair"].replace("keyMaterial", "privateKey")
        self.assertProblem(check("CreateKeyPair", 200, body.encode()), "/privateKey", "unknown element")

    def test_instance_types_wrong_list_name(self):
        body = VALID["DescribeInstanceTypes"].replace("instanceTypeSet", "instanceTypes")
        self.assertProblem(check("DescribeInstanceTypes", 200, body.encode()), "/instanceTypes", "unknown element")

    def test_enum_check_is_opt_in(self):
        body = replaced(DESCRIBE_INSTANCES, "<name>running</name>", "<name>ACTIVE</name>").encode()
        self.assertEqual(check("DescribeInstances", 200, body), [])
        self.assertProblem(check("DescribeInstances", 200, body, enums=True),
                           "instanceState/name", "'ACTIVE' is not a known value of enum InstanceStateName")

    def test_required_member_missing(self):
        # RunInstancesMonitoringEnabled (in DescribeSpotInstanceRequests) requires Enabled.
        tmpl = (f"<DescribeSpotInstanceRequestsResponse {NS}>{RID}<spotInstanceRequestSet><item>"
                "<launchSpecification><monitoring>{}</monitoring></launchSpecification>"
                "</item></spotInstanceRequestSet></DescribeSpotInstanceRequestsResponse>")
        op = "DescribeSpotInstanceRequests"
        self.assertEqual(check(op, 200, tmpl.format("<enabled>true</enabled>").encode()), [])
        self.assertProblem(check(op, 200, tmpl.format("").encode()), "required member Enabled", "missing")

    def test_error_in_query_style_shape(self):
        # botocore accepts this generic-Query layout; EC2 never sends it.
        body = (b"<ErrorResponse><Error><Code>InvalidInstanceID.NotFound</Code><Message>x</Message>"
                b"</Error><RequestId>abc</RequestId></ErrorResponse>")
        probs = check("DescribeInstances", 400, body)
        self.assertProblem(probs, "must be <Response>")
        self.assertProblem(probs, "RequestID")

    def test_error_missing_errors_wrapper(self):
        body = b"<Response><Error><Code>X</Code><Message>y</Message></Error><RequestID>r</RequestID></Response>"
        probs = check("DescribeInstances", 400, body)
        # botocore still finds Error.Code here; only the structural check catches it.
        self.assertProblem(probs, "exactly one <Errors>")
        self.assertProblem(probs, "/Response/Error", "did you mean <Errors>?")

    def test_error_request_id_wrong_case(self):
        # botocore accepts <RequestId> too (QueryParser maps it), other EC2
        # clients read <RequestID> only, so the structural check must catch it.
        probs = check("DescribeInstances", 400, ERROR_400.replace("RequestID", "RequestId").encode())
        self.assertProblem(probs, "/Response/RequestId", "wrong case, expected <RequestID>")
        self.assertProblem(probs, "/Response/RequestID: must appear once")

    def test_error_lowercase_code(self):
        probs = check("DescribeInstances", 400, ERROR_400.replace("Code>", "code>").encode())
        self.assertProblem(probs, "Error[0]/Code: must appear exactly once")
        self.assertProblem(probs, "Error[0]/code", "wrong case")

    def test_error_empty_body(self):
        self.assertProblem(check("DescribeInstances", 500, b""), "not well-formed XML")
        self.assertProblem(check("DescribeInstances", 500, b"<html><body>oops</body></html>"), "<Response>")

    def test_error_body_with_success_status(self):
        self.assertProblem(check("DescribeInstances", 200, ERROR_400.encode()), "error body was sent with a 2xx status")

    def test_malformed_xml_and_unknown_operation(self):
        self.assertProblem(check("DescribeInstances", 200, b"<a><b></a>"), "not well-formed XML")
        self.assertEqual(check("DescribeInstancez", 200, DESCRIBE_INSTANCES.encode()),
                         ["unknown EC2 operation 'DescribeInstancez'"])


class Cli(unittest.TestCase):
    """Run the CLI as the engineer will: a separate process, the same python."""

    def run_cli(self, *args):
        script = Path(ec2_check.__file__)
        return subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True)

    def test_single_file(self):
        with tempfile.TemporaryDirectory() as d:
            good = Path(d, "good.xml")
            good.write_text(DESCRIBE_INSTANCES)
            r = self.run_cli("DescribeInstances", "200", str(good))
            self.assertEqual((r.returncode, r.stdout), (0, ""), r.stderr)
            bad = Path(d, "bad.xml")
            bad.write_text(DESCRIBE_INSTANCES.replace("instanceState", "instanceStat"))
            r = self.run_cli("DescribeInstances", "200", str(bad))
            self.assertEqual(r.returncode, 1)
            self.assertIn("instanceStat: unknown element", r.stdout)

    def test_dir(self):
        with tempfile.TemporaryDirectory() as d:
            for op, xml in VALID.items():
                Path(d, f"{op}.200.basic.xml").write_text(xml)
            Path(d, "DescribeInstances.400.notfound.xml").write_text(ERROR_400)
            Path(d, "README.xml").write_text("<x/>")
            r = self.run_cli("--dir", d)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            self.assertIn("11 checked: 11 ok, 0 failed, 1 skipped", r.stdout)

            Path(d, "DescribeTags.200.broken.xml").write_text(DESCRIBE_TAGS.replace(RID, ""))
            r = self.run_cli("--dir", d)
            self.assertEqual(r.returncode, 1)
            self.assertIn("FAIL DescribeTags.200.broken.xml", r.stdout)
            self.assertIn("12 checked: 11 ok, 1 failed, 1 skipped", r.stdout)

    def test_empty_dir_fails(self):
        with tempfile.TemporaryDirectory() as d:
            self.assertEqual(self.run_cli("--dir", d).returncode, 1)


if __name__ == "__main__":
    unittest.main()
